// One session's link to the server: a WebSocket at a time, the numbering and acknowledgement of
// frames across connections (the unacknowledged tail, sent again after a resume), heartbeats,
// and the resume schedule (docs/PROTOCOL.md "Frames", "Session resumption").

import {
  ACK_FRAMES, Frame, KIND_ACK, KIND_CONTROL, KIND_DATA, KIND_PING, KIND_PONG, Message,
  PROTOCOL_VERSION, SUBPROTOCOL, UNNUMBERED, controlFrame, dataFrame, frame, parseControl,
  parseData, parseFrame, stamp,
} from "./protocol.js";

/** The subset of the WebSocket API the link uses (the browser's, or Node's `ws`). */
export interface SocketLike {
  binaryType: string;
  readonly bufferedAmount: number;
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}
export type SocketCtor = new (url: string, protocols: string | string[]) => SocketLike;

/** What the link tells its session. */
export interface LinkOwner {
  /** A control message (numbered or handshake), with its attachment. */
  message(msg: Message, attachment: Uint8Array): void;
  /** A chunk of a stream. */
  data(sid: number, bytes: Uint8Array): void;
  /** The connection is gone (the session may resume it). */
  lost(): void;
  /** A frame the protocol forbids: the connection is dropped. */
  fault(why: string): void;
}

const OPEN = 1;
/** How long data may hold up control in the socket (see `Link.dataRoom`), ms. */
const DRAIN_MS = 10;
/** Bounds on the bytes of data the socket may hold unsent. */
const MIN_ROOM = 64 * 1024;
const MAX_ROOM = 8 * 1024 * 1024;
const AGENT = "crvm-web/0.1.0";

interface Kept {
  seq: number;
  bytes: Uint8Array;
}

export class Link {
  private ws: SocketLike | null = null;
  /** True while numbered frames may go straight onto the socket. */
  private flowing = false;
  private nextSeq = 1;
  private tail: Kept[] = [];
  private waiting: Uint8Array[] = [];
  /** The last numbered frame handled from the server. */
  handled = 0;
  private unacked = 0;
  private lastSend = 0;
  private lastRecv = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  /** Bytes handed to this socket, and the socket's measured drain rate (bytes per ms). */
  private written = 0;
  private drained = 0;
  private drainAt = 0;
  private wasBuffered = false;
  private drainRate = 0;
  heartbeatMs = 10_000;

  constructor(private url: string, private readonly Ctor: SocketCtor, private readonly owner: LinkOwner) {}

  /**
   * The session moved to another cluster node (a drain): later connections go to `hostPort`
   * (its WebSocket `HOST:PORT`), with the same scheme and path.
   */
  moveTo(hostPort: string): void {
    const u = new URL(this.url);
    u.host = hostPort;
    this.url = u.toString();
  }

  get open(): boolean {
    return this.ws !== null && this.ws.readyState === OPEN;
  }

  /**
   * Whether a data frame may go onto the socket now. The browser gives a page no way to bound
   * what its WebSocket holds unsent, so the link does: data may fill the socket up to what it
   * drains in `DRAIN_MS`, so that a control frame sent now waits about that long behind data,
   * on a slow link as on a fast one, and the socket never runs dry between two looks at it
   * (the page looks again after a timer, which browsers clamp to 4 ms once timers chain).
   */
  dataRoom(): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return true; // frames wait in the link
    const buffered = ws.bufferedAmount;
    const now = performance.now();
    const drained = this.written - buffered;
    const dt = now - this.drainAt;
    if (dt >= 1) {
      const rate = (drained - this.drained) / dt; // bytes per ms
      if (this.wasBuffered && buffered > 0) {
        // Busy the whole time: what it drained is what the path carries.
        this.drainRate = this.drainRate === 0 ? rate : 0.75 * this.drainRate + 0.25 * rate;
      } else if (rate > this.drainRate) {
        // It ran dry, or started empty: it carries at least this much.
        this.drainRate = rate;
      }
      this.drainAt = now;
      this.drained = drained;
      this.wasBuffered = buffered > 0;
    }
    const room = Math.min(MAX_ROOM, Math.max(MIN_ROOM, this.drainRate * DRAIN_MS));
    return buffered < room;
  }

  /**
   * Opens a connection. With `resume`, numbered frames wait until `resumed()` is called;
   * without, they flow as soon as the socket opens (hello then the login, no round trip).
   */
  connect(resume?: { app_id: string; session: string; secret: string }): void {
    this.drop();
    const ws = new this.Ctor(this.url, SUBPROTOCOL);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.written = this.drained = 0;
    this.wasBuffered = false;
    this.drainAt = performance.now();
    // A connection that does not open is dead after the same silence as an open one.
    this.lastRecv = Date.now();
    this.startTimer();
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.lastRecv = Date.now();
      this.raw(controlFrame({ t: "hello", c: { ver: PROTOCOL_VERSION, agent: AGENT } }));
      if (resume) {
        this.raw(controlFrame({ t: "resume", c: { ...resume, last: this.handled } }));
      } else {
        this.flowing = true;
        this.flush();
      }
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.receive(ev.data);
    };
    const gone = () => {
      if (this.ws !== ws) return;
      this.drop();
      this.owner.lost();
    };
    ws.onclose = gone;
    ws.onerror = gone;
  }

  /** The server resumed the session: drop what it handled, send the rest of the tail again. */
  resumed(last: number): void {
    this.acked(last);
    for (const k of this.tail) {
      stamp(k.bytes, k.seq, this.handled);
      this.raw(k.bytes);
    }
    this.unacked = 0;
    this.flowing = true;
    this.flush();
  }

  /** Forgets the connection without telling the owner. */
  drop(): void {
    this.flowing = false;
    this.stopTimer();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      ws.onerror = () => {};
      try {
        ws.close();
      } catch {
        /* already closed */
      }
    }
  }

  /** Ends the session's link for good: nothing is kept for a resume. */
  reset(): void {
    this.drop();
    this.tail = [];
    this.waiting = [];
    this.nextSeq = 1;
    this.handled = 0;
    this.unacked = 0;
  }

  sendMsg(msg: Message, attachment?: Uint8Array): void {
    this.numbered(controlFrame(msg, attachment));
  }

  /** One data frame of stream `sid` carrying `parts`, one after the other. */
  sendData(sid: number, parts: Uint8Array[]): void {
    this.numbered(dataFrame(sid, parts));
  }

  private numbered(f: Uint8Array): void {
    if (this.flowing && this.open) this.write(f);
    else this.waiting.push(f);
  }

  private flush(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const f of w) this.write(f);
  }

  private write(f: Uint8Array): void {
    const seq = this.nextSeq++;
    stamp(f, seq, this.handled);
    this.tail.push({ seq, bytes: f });
    this.raw(f);
  }

  private raw(f: Uint8Array): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    const v = new DataView(f.buffer, f.byteOffset, f.length);
    // Every frame carries the latest acknowledgement.
    v.setUint32(16, Math.floor(this.handled / 2 ** 32));
    v.setUint32(20, this.handled >>> 0);
    this.unacked = 0;
    this.lastSend = Date.now();
    this.written += f.length;
    ws.send(f);
  }

  private acked(upto: number): void {
    let i = 0;
    while (i < this.tail.length && this.tail[i].seq <= upto) i++;
    if (i > 0) this.tail.splice(0, i);
  }

  private receive(data: any): void {
    this.lastRecv = Date.now();
    let f: Frame;
    try {
      f = parseFrame(data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } catch (e) {
      return this.owner.fault(String(e));
    }
    if (f.ack >= this.nextSeq) return this.owner.fault("ack beyond what was sent");
    this.acked(f.ack);
    switch (f.kind) {
      case KIND_PING:
        this.raw(frame(KIND_PONG, new Uint8Array(0)));
        return;
      case KIND_PONG:
      case KIND_ACK:
        return;
      case KIND_CONTROL: {
        let m;
        try {
          m = parseControl(f.payload);
        } catch (e) {
          return this.owner.fault(String(e));
        }
        if (f.seq === 0) {
          if (!UNNUMBERED.has(m.msg.t)) return this.owner.fault(`unnumbered ${m.msg.t}`);
          return this.owner.message(m.msg, m.attachment);
        }
        if (!this.take(f.seq)) return;
        this.owner.message(m.msg, m.attachment);
        return this.handledOne(f.seq);
      }
      case KIND_DATA: {
        if (f.seq === 0 || !this.take(f.seq)) return;
        const d = parseData(f.payload);
        this.owner.data(d.sid, d.bytes);
        return this.handledOne(f.seq);
      }
      default:
        return this.owner.fault(`frame kind ${f.kind}`);
    }
  }

  /** Whether a numbered frame is new (an old one is discarded; a gap is an error). */
  private take(seq: number): boolean {
    if (seq <= this.handled) return false;
    if (seq !== this.handled + 1) {
      this.owner.fault("gap in sequence numbers");
      return false;
    }
    return true;
  }

  private handledOne(seq: number): void {
    this.handled = seq;
    if (++this.unacked >= ACK_FRAMES && this.open) this.raw(frame(KIND_ACK, new Uint8Array(0)));
  }

  private startTimer(): void {
    this.stopTimer();
    this.lastSend = Date.now();
    const tick = Math.max(50, Math.min(1000, this.heartbeatMs / 4));
    this.timer = setInterval(() => {
      const now = Date.now();
      if (now - this.lastRecv > Math.min(3 * this.heartbeatMs, 15_000)) {
        // No sign of life: the link is dead even if the socket does not know it yet.
        this.drop();
        this.owner.lost();
        return;
      }
      if (now - this.lastSend >= this.heartbeatMs) this.raw(frame(KIND_PING, new Uint8Array(0)));
    }, tick);
  }

  private stopTimer(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
