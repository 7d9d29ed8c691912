// Buffers and files: the sender's side (offer, window, checksum, progress, cancel) and the
// receiver's (storing, acknowledging, checking the checksum, fin), docs/PROTOCOL.md "Streams".

import { createXXHash128, IHasher } from "hash-wasm";
import { toBase64 } from "./base64.js";
import type { Link } from "./link.js";
import { CHUNK, MAX_OUTGOING, WINDOW, ackThreshold } from "./protocol.js";

/**
 * A Blob source is read through one stream of its bytes (`Blob.stream()`): Chromium fills the
 * stream's pipe while the page sends, where separate reads each wait for a round trip to the
 * browser's blob store (measured on the bench machine: 4 MiB reads one at a time 370 MB/s, the
 * stream 550 MB/s). What the stream has delivered and not yet been sent waits here.
 */
interface BlobReader {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  /** The next read, started before it is needed so that the pipe never waits for the page. */
  next: Promise<ReadableStreamReadResult<Uint8Array>>;
  /** Delivered bytes not yet sent, in order. */
  have: Uint8Array[];
  haveLen: number;
}

function openBlob(source: Blob): BlobReader {
  const reader = source.stream().getReader();
  return { reader, next: readNext(reader), have: [], haveLen: 0 };
}

function readNext(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<ReadableStreamReadResult<Uint8Array>> {
  const next = reader.read();
  // A read started ahead and never awaited must not become an unhandled rejection; whoever
  // awaits it still sees the failure.
  next.catch(() => {});
  return next;
}

/** The next `n` bytes of the Blob, as the parts the stream delivered them in. */
async function takeBlob(b: BlobReader, n: number): Promise<Uint8Array[]> {
  while (b.haveLen < n) {
    const r = await b.next;
    if (r.done) throw new Error("the Blob ended early");
    b.next = readNext(b.reader);
    b.have.push(r.value);
    b.haveLen += r.value.length;
  }
  const parts: Uint8Array[] = [];
  let want = n;
  while (want > 0) {
    const head = b.have[0];
    if (head.length <= want) {
      parts.push(head);
      b.have.shift();
      want -= head.length;
    } else {
      parts.push(head.subarray(0, want));
      b.have[0] = head.subarray(want);
      want = 0;
    }
  }
  b.haveLen -= n;
  return parts;
}

let hasher: IHasher | null = null;
let fresh: Uint8Array | null = null;

/** Loads the XXH3-128 hasher once; streams then hash synchronously through saved states. */
export async function loadHasher(): Promise<void> {
  if (hasher) return;
  hasher = await createXXHash128();
  hasher.init();
  fresh = hasher.save();
}

function hashUpdate(state: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  hasher!.load(state);
  for (const bytes of parts) hasher!.update(bytes);
  return hasher!.save();
}

function hashDigest(state: Uint8Array): string {
  hasher!.load(state);
  return hasher!.digest("hex");
}

export interface TransferEvents {
  progress(task: string, sent: number, total: number): void;
  result(out: Outgoing, code: number): void;
  cancelResult(task: string, code: number): void;
  received(from: string, kind: string, task: string, data: Uint8Array[], name: string): void;
  cancelledIncoming(task: string): void;
  request(op: unknown, done: (result: { t: string; c?: any }) => void): void;
}

export interface Outgoing {
  task: string;
  kind: "buffer" | "file";
  to: string;
  name: string;
  source: Blob | Uint8Array;
  size: number;
  sid: number;
  offered: boolean;
  started: boolean;
  sent: number;
  acked: number;
  reported: number;
  cancelling: boolean;
  ended: boolean;
  pumping: boolean;
  endSent: boolean;
  hash: Uint8Array;
  /** A Blob source's stream of bytes, opened when the first chunk is sent. */
  blob?: BlobReader;
  /** The pending look at a full socket, if any. */
  retry?: ReturnType<typeof setTimeout>;
}

interface Incoming {
  sid: number;
  task: string;
  from: string;
  kind: string;
  size: number;
  name: string;
  chunks: Uint8Array[];
  got: number;
  ackedSent: number;
  lastChunk: number;
  hash: Uint8Array;
  theirs: string | null;
  done: boolean;
}

export class Transfers {
  private queue: Outgoing[] = [];
  private byTask = new Map<string, Outgoing>();
  private bySid = new Map<number, Outgoing>();
  private offers = 0;
  private incoming = new Map<number, Incoming>();

  constructor(private readonly link: Link, private readonly ev: TransferEvents) {}

  send(task: string, kind: "buffer" | "file", to: string, source: Blob | Uint8Array, name: string): void {
    const size = source instanceof Uint8Array ? source.length : source.size;
    const out: Outgoing = {
      task, kind, to, name, source, size, sid: 0, offered: false, started: false, sent: 0,
      acked: 0, reported: -1, cancelling: false, ended: false, pumping: false, endSent: false, hash: fresh!,
    };
    this.byTask.set(task, out);
    this.queue.push(out);
    this.offerNext();
  }

  cancel(task: string): void {
    const out = this.byTask.get(task);
    if (!out || out.ended || out.cancelling) {
      queueMicrotask(() => this.ev.cancelResult(task, 1104));
      return;
    }
    out.cancelling = true;
    if (!out.offered) {
      // Never offered: nobody else heard of it.
      this.queue = this.queue.filter((o) => o !== out);
      this.end(out);
      queueMicrotask(() => this.ev.cancelResult(task, 0));
    } else if (out.sid) {
      this.link.sendMsg({ t: "cancel", c: { sid: out.sid } });
    }
    // Offered but not answered yet: the answer sends the cancel.
  }

  private offerNext(): void {
    while (this.offers < MAX_OUTGOING && this.queue.length > 0) {
      const out = this.queue.shift()!;
      out.offered = true;
      this.offers++;
      const op = { t: "offer", c: { task: out.task, to: out.to, kind: out.kind, size: out.size, name: out.name } };
      this.ev.request(op, (result) => {
        if (result.t !== "offer") {
          this.end(out);
          if (out.cancelling) this.ev.cancelResult(out.task, 1104);
          else this.ev.result(out, result.t === "err" ? result.c : 3);
          return;
        }
        out.sid = result.c.sid;
        this.bySid.set(out.sid, out);
        if (out.cancelling) this.link.sendMsg({ t: "cancel", c: { sid: out.sid } });
      });
    }
  }

  private end(out: Outgoing): void {
    if (out.ended) return;
    stop(out);
    this.byTask.delete(out.task);
    if (out.sid) this.bySid.delete(out.sid);
    if (out.offered) {
      this.offers--;
      this.offerNext();
    }
  }

  /** Server messages about streams; false when `msg` is not one of them. */
  message(t: string, c: any): boolean {
    switch (t) {
      case "start": {
        const out = this.bySid.get(c.sid);
        if (out && !out.started) {
          out.started = true;
          void this.pump(out);
        }
        return true;
      }
      case "progress": {
        const out = this.bySid.get(c.sid);
        if (out && c.bytes > out.acked) {
          out.acked = c.bytes;
          if (!out.cancelling && c.bytes > out.reported) {
            out.reported = c.bytes;
            this.ev.progress(out.task, c.bytes, out.size);
          }
          void this.pump(out);
        }
        return true;
      }
      case "xfer_end": {
        const out = this.bySid.get(c.sid);
        if (!out) return true;
        const cancelling = out.cancelling;
        if (cancelling && c.code !== 0) {
          // The stream failed under the cancel: the cancel's own answer reports it.
          return true;
        }
        if (c.code === 0 && out.reported < out.size) {
          out.reported = out.size;
          this.ev.progress(out.task, out.size, out.size);
        }
        if (!cancelling) this.end(out);
        this.ev.result(out, c.code);
        return true;
      }
      case "cancel_done": {
        const out = this.bySid.get(c.sid) ?? [...this.byTask.values()].find((o) => o.sid === c.sid);
        if (out) {
          this.end(out);
          this.ev.cancelResult(out.task, c.code);
        }
        return true;
      }
      case "incoming": {
        this.incoming.set(c.sid, {
          sid: c.sid, task: c.task, from: c.from, kind: c.kind, size: c.size, name: c.name,
          chunks: [], got: 0, ackedSent: 0, lastChunk: 0, hash: fresh!, theirs: null, done: false,
        });
        this.maybeFinish(this.incoming.get(c.sid)!);
        return true;
      }
      case "data_end": {
        const inc = this.incoming.get(c.sid);
        if (inc) {
          inc.theirs = c.hash;
          this.maybeFinish(inc);
        }
        return true;
      }
      case "cancelled": {
        const inc = this.incoming.get(c.sid);
        if (inc && !inc.done) {
          this.incoming.delete(c.sid);
          this.link.sendMsg({ t: "cancel_ack", c: { sid: c.sid, code: 0 } });
          this.ev.cancelledIncoming(inc.task);
        } else {
          this.link.sendMsg({ t: "cancel_ack", c: { sid: c.sid, code: 1104 } });
        }
        return true;
      }
    }
    return false;
  }

  /** A chunk of an incoming stream. */
  data(sid: number, bytes: Uint8Array): void {
    const inc = this.incoming.get(sid);
    if (!inc || inc.done) return;
    const copy = bytes.slice();
    inc.chunks.push(copy);
    inc.got += copy.length;
    inc.lastChunk = copy.length;
    inc.hash = hashUpdate(inc.hash, copy);
    if (inc.got < inc.size && inc.got - inc.ackedSent >= ackThreshold(inc.lastChunk)) {
      inc.ackedSent = inc.got;
      this.link.sendMsg({ t: "ack", c: { sid, bytes: inc.got } });
    }
    this.maybeFinish(inc);
  }

  private maybeFinish(inc: Incoming): void {
    if (inc.done || inc.theirs === null || inc.got < inc.size) return;
    inc.done = true;
    this.incoming.delete(inc.sid);
    if (inc.got !== inc.size) {
      this.link.sendMsg({ t: "fin", c: { sid: inc.sid, code: 1101 } });
      return;
    }
    if (inc.ackedSent < inc.got) this.link.sendMsg({ t: "ack", c: { sid: inc.sid, bytes: inc.got } });
    if (hashDigest(inc.hash) !== inc.theirs.toLowerCase()) {
      this.link.sendMsg({ t: "fin", c: { sid: inc.sid, code: 1103 } });
      return;
    }
    this.ev.received(inc.from, inc.kind, inc.task, inc.chunks, inc.name);
    this.link.sendMsg({ t: "fin", c: { sid: inc.sid, code: 0 } });
  }

  /** Sends what the window and the socket allow; one pump per stream at a time. */
  private async pump(out: Outgoing): Promise<void> {
    if (out.pumping) return;
    out.pumping = true;
    try {
      while (!out.ended && !out.cancelling && out.sent < out.size && out.sent - out.acked < WINDOW) {
        if (!this.link.dataRoom()) {
          // The socket is full: look again shortly rather than queue data ahead of control.
          // One look-again per stream: every `progress` that finds the socket full would
          // otherwise start a polling chain of its own (counted: 18,000 wake-ups for 100 MiB,
          // all on the page's main thread, which Chromium's WebSocket also needs).
          out.retry ??= setTimeout(() => {
            out.retry = undefined;
            void this.pump(out);
          }, 1);
          return;
        }
        const n = Math.min(CHUNK, out.size - out.sent);
        const parts = await this.read(out, n);
        if (out.ended || out.cancelling) return;
        out.hash = hashUpdate(out.hash, ...parts);
        out.sent += n;
        this.link.sendData(out.sid, parts);
      }
      if (!out.ended && !out.cancelling && out.sent === out.size && !out.endSent) {
        out.endSent = true;
        const hash = hashDigest(out.hash);
        this.link.sendMsg({ t: "data_end", c: { sid: out.sid, hash } });
      }
    } catch {
      // The Blob became unreadable.
      if (!out.ended) {
        this.link.sendMsg({ t: "cancel", c: { sid: out.sid } });
        out.cancelling = true;
        this.end(out);
        this.ev.result(out, 1401);
      }
    } finally {
      out.pumping = false;
    }
  }

  /** The next `n` bytes of the source (the link keeps what it sent for a resume, so a stream
   * never reads its source twice). */
  private async read(out: Outgoing, n: number): Promise<Uint8Array[]> {
    const source = out.source;
    if (source instanceof Uint8Array) return [source.subarray(out.sent, out.sent + n)];
    out.blob ??= openBlob(source);
    return takeBlob(out.blob, n);
  }

  /** The session ended: every transfer ends with `code`; what was being received is dropped. */
  failAll(code: number): void {
    const all = [...this.byTask.values()];
    this.queue = [];
    this.byTask.clear();
    this.bySid.clear();
    this.offers = 0;
    this.incoming.clear();
    for (const out of all) {
      stop(out);
      if (out.cancelling) this.ev.cancelResult(out.task, code);
      else this.ev.result(out, code);
    }
  }
}

/** Marks `out` ended and lets go of what it holds: its Blob's stream and its pending look at
 * a full socket. */
function stop(out: Outgoing): void {
  out.ended = true;
  if (out.blob) void out.blob.reader.cancel().catch(() => {});
  out.blob = undefined;
  if (out.retry !== undefined) clearTimeout(out.retry);
  out.retry = undefined;
}

export function joinBase64(chunks: Uint8Array[]): string {
  let n = 0;
  for (const c of chunks) n += c.length;
  const all = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return toBase64(all);
}
