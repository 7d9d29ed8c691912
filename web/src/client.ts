// CloudroomVideoMgr: the seed's methods and events over one resumable session (docs/WEB.md).

import { fromBase64, toBase64 } from "./base64.js";
import { EventMap, EventName, EVENT_NAMES } from "./events.js";
import { Link, LinkOwner, SocketCtor } from "./link.js";
import { CMD_MAX, CMD_WINDOW, CMD_WINDOW_BYTES, ID_MAX, Message, OPAQUE_MAX, USER_ID_MAX, utf8Len } from "./protocol.js";
import { Outgoing, Transfers, joinBase64, loadHasher } from "./transfers.js";

/** A request refused before anything was sent; `code` is the library's error code. */
export class CrvmError extends Error {
  constructor(readonly code: number, message: string) {
    super(`${message} (${code})`);
    this.name = "CrvmError";
  }
}

export interface Options {
  /** The WebSocket constructor; by default `globalThis.WebSocket` (Node: pass `ws`'s). */
  WebSocket?: SocketCtor;
  /** Resume a session whose link was lost (default true); false: `lineOff(207)` at once. */
  reconnect?: boolean;
}

type State = "idle" | "logging_in" | "online";

interface Pending {
  op: any;
  done: (result: { t: string; c?: any }) => void;
}

interface Cmd {
  task: string;
  to: string;
  bytes: Uint8Array;
  n: number;
}

let idCounter = 0;

/** A fresh call or task ID: the prefix and 32 hex digits (random where Web Crypto is available). */
function hexId(prefix: string): string {
  const b = new Uint8Array(16);
  const crypto = (globalThis as any).crypto;
  if (crypto?.getRandomValues) crypto.getRandomValues(b);
  else {
    const n = ++idCounter;
    for (let i = 0; i < 12; i++) b[i] = Math.floor(Math.random() * 256);
    new DataView(b.buffer).setUint32(12, n);
  }
  return prefix + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function statusJson(s: any): string {
  return JSON.stringify({ userID: s.userID, userStatus: s.userStatus, DNDType: s.DNDType });
}

function meetingJson(m: any): string {
  return JSON.stringify({
    ID: m.ID, pswd: m.pswd, subject: m.subject, pubMeetUrl: m.pubMeetUrl, creator: m.creator,
    memberCount: m.memberCount, startTime: m.startTime,
  });
}

/** How many ended calls a session remembers, to drop a second end of one. */
const ENDED_KEPT = 256;

export class CloudroomVideoMgr implements LinkOwner {
  private handlers = new Map<EventName, Function[]>();
  private readonly link: Link;
  private readonly transfers: Transfers;
  private readonly reconnect: boolean;
  private state: State = "idle";
  private destroyed = false;
  private nextReq = 1;
  private pending = new Map<number, Pending>();
  private appId = "";
  private resumable: { session: string; secret: string; window_s: number } | null = null;
  private downSince = 0;
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private giveUpTimer: ReturnType<typeof setTimeout> | null = null;
  private closeCode = 0;
  private statusCookie = "";
  private myMeetObj = new Map<string, string>();
  /**
   * The last {@link ENDED_KEPT} calls that ended for this session: a second end of one is not
   * passed on. A cluster can tell a call's end twice (a Redis failover lost the write that ended
   * it); a call ends once for each party.
   */
  private endedCalls: string[] = [];
  private maxBuffer = 100 * 1024 * 1024;
  private maxFile = 4 * 1024 * 1024 * 1024;
  // Cmds: numbered per session; a window of unfinished ones, the rest queued.
  private cmdN = 0;
  private cmdsOut = new Map<number, Cmd>();
  private cmdBytes = 0;
  private cmdQueue: Cmd[] = [];
  private readonly onOnline = () => this.online();

  constructor(url: string, options: Options = {}) {
    const Ctor = options.WebSocket ?? ((globalThis as any).WebSocket as SocketCtor | undefined);
    if (!Ctor) throw new Error("no WebSocket: pass options.WebSocket");
    this.reconnect = options.reconnect ?? true;
    this.link = new Link(url, Ctor, this);
    this.transfers = new Transfers(this.link, {
      progress: (task, sent, total) => this.emit("sendProgress", task, sent, total, ""),
      result: (out: Outgoing, code) =>
        out.kind === "buffer"
          ? this.emit("sendBufferRlst", out.task, code, "")
          : this.emit("sendFileRlst", out.task, out.name, code, ""),
      cancelResult: (task, code) => this.emit("cancelSendRlst", task, code, ""),
      received: (from, kind, _task, chunks, name) => {
        if (kind === "buffer") this.emit("notifyBufferData", from, joinBase64(chunks));
        else this.emit("notifyFileData", from, makeFile(chunks, name), name);
      },
      cancelledIncoming: (task) => this.emit("notifyCancelSend", task),
      request: (op, done) => this.request(op, done),
    });
    (globalThis as any).addEventListener?.("online", this.onOnline);
  }

  /** Registers `handler` for `eventName` (one of the seed's events, or lineReconnecting/lineResumed). */
  on<E extends EventName>(eventName: E, handler: EventMap[E]): this {
    if (!EVENT_NAMES.includes(eventName)) throw new Error(`unknown event ${eventName}`);
    const list = this.handlers.get(eventName) ?? [];
    list.push(handler);
    this.handlers.set(eventName, list);
    return this;
  }

  /** Removes a handler given to `on`. */
  off<E extends EventName>(eventName: E, handler: EventMap[E]): this {
    const list = this.handlers.get(eventName);
    if (list) this.handlers.set(eventName, list.filter((h) => h !== handler));
    return this;
  }

  private emit<E extends EventName>(name: E, ...args: Parameters<EventMap[E]>): void {
    if (this.destroyed) return;
    for (const h of this.handlers.get(name) ?? []) {
      try {
        h(...args);
      } catch (e) {
        // A handler's exception must not break the session.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  // ---- methods (the seed's names and parameter order) ----

  login(authAcnt: string, authPswd: string, nickName = "", privAcnt = "", privAuthCode = "", cookie = ""): void {
    this.alive();
    if (this.state !== "idle") throw new CrvmError(9, "already logging in or logged in");
    if (!authAcnt || utf8Len(authAcnt) > 128) throw new CrvmError(5, "authAcnt");
    if (utf8Len(nickName) > USER_ID_MAX || utf8Len(privAcnt) > USER_ID_MAX) throw new CrvmError(5, "nickName or privAcnt");
    if (utf8Len(privAuthCode) > OPAQUE_MAX || utf8Len(cookie) > OPAQUE_MAX) throw new CrvmError(5, "privAuthCode or cookie");
    this.state = "logging_in";
    this.appId = authAcnt;
    this.closeCode = 0;
    const op = {
      t: "login",
      c: { app_id: authAcnt, secret: authPswd, user_id: privAcnt, nick: nickName, token: privAuthCode, resume: this.reconnect },
    };
    loadHasher().then(
      () => {
        if (this.state !== "logging_in" || this.destroyed) return;
        this.request(op, (r) => {
          if (r.t === "login") {
            this.state = "online";
            this.emit("loginSuccess", r.c.user_id, cookie);
          } else {
            this.endSession();
            this.emit("loginFail", r.t === "err" ? r.c : 3, cookie);
          }
        });
        this.link.connect();
      },
      () => {
        this.state = "idle";
        this.emit("loginFail", 3, cookie);
      },
    );
  }

  logout(): void {
    this.alive();
    if (this.state === "idle") return;
    if (this.state === "logging_in") {
      // A logout while logging in abandons the login.
      const login = [...this.pending.values()].find((p) => p.op.t === "login");
      this.pending.clear();
      this.endSession();
      this.failRequests(12);
      login?.done({ t: "err", c: 9 });
      return;
    }
    // The logout is written before the socket closes; unanswered requests get 12.
    this.request({ t: "logout" }, () => {});
    this.endSession(12);
  }

  setDNDStatus(DNDStatus: number, cookie = ""): void {
    this.ready(cookie);
    this.request({ t: "set_dnd", c: { dnd: DNDStatus | 0 } }, (r) =>
      r.t === "ok" ? this.emit("setDNDStatusSuccess", cookie) : this.emit("setDNDStatusFail", code(r), cookie),
    );
  }

  getUserStatus(cookie = ""): void {
    this.ready(cookie);
    this.request({ t: "get_user_status" }, (r) =>
      r.t === "statuses"
        ? this.emit("getUserStatusSuccess", "[" + r.c.map(statusJson).join(",") + "]", cookie)
        : this.emit("getUserStatusFail", code(r), cookie),
    );
  }

  startUserStatusNotify(cookie = ""): void {
    this.ready(cookie);
    this.request({ t: "start_status_notify" }, (r) => {
      if (r.t === "ok") this.statusCookie = cookie;
      this.emit("startUserStatusNotifyRslt", r.t === "ok" ? 0 : code(r), cookie);
    });
  }

  stopUserStatusNotify(cookie = ""): void {
    this.ready(cookie);
    this.request({ t: "stop_status_notify" }, (r) =>
      this.emit("stopUserStatusNotifyRslt", r.t === "ok" ? 0 : code(r), cookie),
    );
  }

  createMeeting(meetSubject: string, createPswd: number, cookie = ""): void {
    this.ready(cookie);
    if ([...meetSubject].length > 50) throw new CrvmError(5, "meetSubject");
    this.request({ t: "create_meeting", c: { subject: meetSubject, with_pswd: createPswd > 0 } }, (r) =>
      r.t === "meeting"
        ? this.emit("createMeetingSuccess", meetingJson(r.c), cookie)
        : this.emit("createMeetingFail", code(r), cookie),
    );
  }

  destroyMeeting(meetID: number, cookie = ""): void {
    this.ready(cookie);
    this.request({ t: "destroy_meeting", c: { meet_id: meetID } }, (r) =>
      this.emit("destroyMeetingRslt", r.t === "ok" ? 0 : code(r), cookie),
    );
  }

  getMeetings(cookie = ""): void {
    this.ready(cookie);
    this.request({ t: "get_meetings" }, (r) =>
      r.t === "meetings"
        ? this.emit("getMeetingsSuccess", "[" + r.c.map(meetingJson).join(",") + "]", cookie)
        : this.emit("getMeetingsFail", code(r), cookie),
    );
  }

  /** Calls `calledUserID`; returns the call ID. */
  call(calledUserID: string, meetObj = "", usrExtDat = "", cookie = ""): string {
    this.ready(cookie, meetObj, usrExtDat);
    this.id(calledUserID, USER_ID_MAX, "calledUserID");
    const callId = hexId("c-");
    this.myMeetObj.set(callId, meetObj);
    this.request({ t: "call", c: { call_id: callId, callee: calledUserID, meet_obj: meetObj, ext: usrExtDat } }, (r) => {
      if (r.t === "ok") this.emit("callSuccess", callId, cookie);
      else {
        this.myMeetObj.delete(callId);
        this.emit("callFail", callId, code(r), cookie);
      }
    });
    return callId;
  }

  acceptCall(callID: string, meetObj = "", usrExtDat = "", cookie = ""): void {
    this.ready(cookie, meetObj, usrExtDat);
    this.id(callID, ID_MAX, "callID");
    this.request({ t: "accept_call", c: { call_id: callID, meet_obj: meetObj, ext: usrExtDat } }, (r) =>
      r.t === "ok" ? this.emit("acceptCallSuccess", callID, cookie) : this.emit("acceptCallFail", callID, code(r), cookie),
    );
  }

  rejectCall(callID: string, usrExtDat = "", cookie = ""): void {
    this.ready(cookie, usrExtDat);
    this.id(callID, ID_MAX, "callID");
    this.request({ t: "reject_call", c: { call_id: callID, ext: usrExtDat } }, (r) => {
      if (r.t !== "ok") return this.emit("rejectCallFail", callID, code(r), cookie);
      this.callEnded(callID);
      this.emit("rejectCallSuccess", callID, cookie);
    });
  }

  /** Records that `callID` ended for this session; false if it had already. */
  private callEnded(callID: string): boolean {
    if (this.endedCalls.includes(callID)) return false;
    this.endedCalls.push(callID);
    if (this.endedCalls.length > ENDED_KEPT) this.endedCalls.shift();
    return true;
  }

  hungupCall(callID: string, usrExtDat = "", cookie = ""): void {
    this.ready(cookie, usrExtDat);
    this.id(callID, ID_MAX, "callID");
    this.request({ t: "hangup_call", c: { call_id: callID, ext: usrExtDat } }, (r) => {
      this.myMeetObj.delete(callID);
      if (r.t !== "ok") return this.emit("hungupCallFail", callID, code(r), cookie);
      this.callEnded(callID);
      this.emit("hungupCallSuccess", callID, cookie);
    });
  }

  /** Sends a cmd (≤ 51,200 bytes; base64 text or bytes); returns the task ID. */
  sendCmd(targetUserId: string, data: string | Uint8Array): string {
    this.ready("");
    this.id(targetUserId, USER_ID_MAX, "targetUserId");
    const bytes = this.bytes(data);
    if (bytes.length > CMD_MAX) throw new CrvmError(1100, "cmd over 51,200 bytes");
    const cmd: Cmd = { task: hexId("t-"), to: targetUserId, bytes, n: 0 };
    this.cmdQueue.push(cmd);
    this.pumpCmds();
    return cmd.task;
  }

  /** Sends a buffer (base64 text or bytes); returns the task ID. */
  sendBuffer(targetUserId: string, data: string | Uint8Array): string {
    this.ready("");
    this.id(targetUserId, USER_ID_MAX, "targetUserId");
    const bytes = this.bytes(data);
    if (bytes.length > this.maxBuffer) throw new CrvmError(1101, "buffer too large");
    const task = hexId("t-");
    this.transfers.send(task, "buffer", targetUserId, bytes.slice(), "");
    return task;
  }

  /** Sends a `File` (its name travels) or a `Blob`; returns the task ID. */
  sendFile(targetUserId: string, file: Blob): string {
    this.ready("");
    this.id(targetUserId, USER_ID_MAX, "targetUserId");
    if (!file || typeof (file as Blob).slice !== "function") throw new CrvmError(1400, "not a File or Blob");
    if (file.size > this.maxFile) throw new CrvmError(1103, "file too large");
    const name = (file as File).name || "blob";
    if (utf8Len(name) > 4096) throw new CrvmError(5, "file name");
    const task = hexId("t-");
    this.transfers.send(task, "file", targetUserId, file, name);
    return task;
  }

  /** Cancels a buffer or file in flight: `cancelSendRlst` follows (1104 for an unknown or finished task). */
  cancelSend(taskID: string): void {
    this.ready("");
    this.transfers.cancel(taskID);
  }

  /** Ends the session at once and for good; no event follows. */
  destroy(): void {
    if (this.destroyed) return;
    if (this.state === "online") this.request({ t: "logout" }, () => {});
    this.destroyed = true;
    (globalThis as any).removeEventListener?.("online", this.onOnline);
    this.endSession(12);
  }

  // ---- argument checks ----

  private alive(): void {
    if (this.destroyed) throw new CrvmError(2, "destroyed");
  }

  private ready(...opaque: string[]): void {
    this.alive();
    if (this.state !== "online") throw new CrvmError(12, "not logged in");
    for (const s of opaque) if (utf8Len(s) > OPAQUE_MAX) throw new CrvmError(5, "field over 8 KiB");
  }

  private id(s: string, max: number, what: string): void {
    if (typeof s !== "string" || s.length === 0 || utf8Len(s) > max) throw new CrvmError(5, what);
  }

  private bytes(data: string | Uint8Array): Uint8Array {
    if (data instanceof Uint8Array) return data;
    if (typeof data !== "string") throw new CrvmError(13, "data is neither base64 nor bytes");
    const b = fromBase64(data);
    if (!b) throw new CrvmError(13, "bad base64");
    return b;
  }

  // ---- requests and cmds ----

  private request(op: any, done: (r: { t: string; c?: any }) => void): void {
    const id = this.nextReq++;
    this.pending.set(id, { op, done });
    this.link.sendMsg({ t: "req", c: { id, op } });
  }

  private failRequests(c: number): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.done({ t: "err", c });
  }

  private pumpCmds(): void {
    while (this.cmdQueue.length > 0) {
      const cmd = this.cmdQueue[0];
      const room = this.cmdsOut.size === 0 || (this.cmdsOut.size < CMD_WINDOW && this.cmdBytes + cmd.bytes.length <= CMD_WINDOW_BYTES);
      if (!room) return;
      this.cmdQueue.shift();
      cmd.n = ++this.cmdN;
      this.cmdsOut.set(cmd.n, cmd);
      this.cmdBytes += cmd.bytes.length;
      this.link.sendMsg({ t: "cmd", c: { n: cmd.n, to: cmd.to } }, cmd.bytes);
    }
  }

  // ---- what the server says ----

  message(msg: Message, attachment: Uint8Array): void {
    const c = msg.c;
    switch (msg.t) {
      case "welcome":
        this.link.heartbeatMs = c.heartbeat_ms || 10_000;
        if (c.max_buffer_bytes) this.maxBuffer = c.max_buffer_bytes;
        if (c.max_file_bytes) this.maxFile = c.max_file_bytes;
        return;
      case "res": {
        const p = this.pending.get(c.re);
        if (p) {
          this.pending.delete(c.re);
          p.done(c.result);
        }
        return;
      }
      case "resumable":
        this.resumable = { session: c.session, secret: c.secret, window_s: c.window_s };
        return;
      case "resumed":
        this.resumable!.secret = c.secret;
        this.attempts = 0;
        this.clearGiveUp();
        this.link.resumed(c.last);
        const offline = Date.now() - this.downSince;
        this.downSince = 0;
        this.emit("lineResumed", offline);
        return;
      case "resume_failed":
        return this.sessionOver(c.code === 10 ? 10 : 207);
      case "retry":
        this.link.drop();
        return this.scheduleResume(c.after_ms + Math.random() * 250);
      case "moved":
        // Its node is draining: the session goes on at another node, resumed there at once.
        if (!c.ws_addr) return this.sessionOver(207);
        this.link.moveTo(c.ws_addr);
        this.link.drop();
        return this.scheduleResume(0);
      case "close":
        this.closeCode = c.code;
        return;
      case "user_status":
        return this.emit("notifyUserStatus", statusJson(c), this.statusCookie);
      case "call_in":
        return this.emit("notifyCallIn", c.call_id, c.meet_obj, c.caller, c.ext);
      case "call_accepted": {
        const mine = this.myMeetObj.get(c.call_id) ?? "";
        return this.emit("notifyCallAccepted", c.call_id, c.ext, c.meet_obj || mine);
      }
      case "call_rejected":
        this.myMeetObj.delete(c.call_id);
        if (!this.callEnded(c.call_id)) return;
        return this.emit("notifyCallRejected", c.call_id, c.reason, c.ext);
      case "call_hungup":
        this.myMeetObj.delete(c.call_id);
        if (!this.callEnded(c.call_id)) return;
        return this.emit("notifyCallHungup", c.call_id, c.ext);
      case "cmd_in":
        this.emit("notifyCmdData", c.from, toBase64(attachment));
        this.link.sendMsg({ t: "cmd_ack", c: { upto: c.n } });
        return;
      case "cmd_done":
        for (const n of c.ns) {
          const cmd = this.cmdsOut.get(n);
          if (!cmd) continue;
          this.cmdsOut.delete(n);
          this.cmdBytes -= cmd.bytes.length;
          this.emit("sendCmdRlst", cmd.task, c.code, "");
        }
        this.pumpCmds();
        return;
      default:
        if (!this.transfers.message(msg.t, c)) this.fault(`unexpected ${msg.t}`);
    }
  }

  data(sid: number, bytes: Uint8Array): void {
    this.transfers.data(sid, bytes);
  }

  fault(_why: string): void {
    this.link.drop();
    this.lost();
  }

  lost(): void {
    if (this.destroyed) return;
    if (this.state === "logging_in") {
      const login = [...this.pending.values()].find((p) => p.op.t === "login");
      this.endSession();
      this.failRequests(12);
      login?.done({ t: "err", c: this.closeCode || 203 });
      return;
    }
    if (this.state !== "online") return;
    const code = this.closeCode;
    if (code !== 0 || !this.resumable || !this.reconnect) return this.sessionOver(code || 207);
    if (this.downSince === 0) {
      this.downSince = Date.now();
      this.attempts = 0;
      // However the attempts go, the session is over once the server no longer holds it.
      this.giveUpTimer = setTimeout(() => this.sessionOver(207), this.resumable.window_s * 1000);
      this.emit("lineReconnecting", 207);
    }
    this.scheduleResume(this.attempts === 0 ? 0 : Math.random() * Math.min(5000, 250 * 2 ** (this.attempts - 1)));
  }

  private clearGiveUp(): void {
    if (this.giveUpTimer !== null) clearTimeout(this.giveUpTimer);
    this.giveUpTimer = null;
  }

  private scheduleResume(ms: number): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    const deadline = this.downSince + this.resumable!.window_s * 1000;
    if (Date.now() + ms >= deadline) {
      this.retryTimer = setTimeout(() => this.sessionOver(207), Math.max(0, deadline - Date.now()));
      return;
    }
    this.retryTimer = setTimeout(() => this.attempt(), ms);
  }

  private attempt(): void {
    this.retryTimer = null;
    if (this.destroyed || this.state !== "online" || !this.resumable) return;
    this.attempts++;
    this.link.connect({ app_id: this.appId, session: this.resumable.session, secret: this.resumable.secret });
  }

  /** The browser is online again: try to resume now rather than at the next scheduled time. */
  private online(): void {
    if (this.state === "online" && this.downSince !== 0 && !this.link.open && this.resumable) {
      if (this.retryTimer !== null) clearTimeout(this.retryTimer);
      this.attempts = 0;
      this.attempt();
    }
  }

  /** The session ended without a logout: every outstanding request and transfer gets `code`'s 207/10, then lineOff. */
  private sessionOver(c: number): void {
    this.endSession(207);
    this.emit("lineOff", c);
  }

  /** Forgets the session; outstanding requests, cmds and transfers end with `code` (0: silently). */
  private endSession(c = 0): void {
    this.state = "idle";
    this.resumable = null;
    this.downSince = 0;
    this.closeCode = 0;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.clearGiveUp();
    this.link.reset();
    this.myMeetObj.clear();
    this.statusCookie = "";
    const cmds = [...this.cmdsOut.values(), ...this.cmdQueue];
    this.cmdsOut.clear();
    this.cmdQueue = [];
    this.cmdBytes = 0;
    this.cmdN = 0;
    this.nextReq = 1;
    if (c === 0) {
      this.pending.clear();
      this.transfers.failAll(0);
      return;
    }
    this.failRequests(c);
    for (const cmd of cmds) this.emit("sendCmdRlst", cmd.task, c, "");
    this.transfers.failAll(c);
  }
}

function code(r: { t: string; c?: any }): number {
  return r.t === "err" ? r.c : 3;
}

function makeFile(chunks: Uint8Array[], name: string): Blob {
  const F = (globalThis as any).File;
  if (F) return new F(chunks, name);
  // Runtimes without a global File (Node 18): a Blob that still carries the name.
  const blob = new Blob(chunks as BlobPart[]);
  Object.defineProperty(blob, "name", { value: name, enumerable: true });
  return blob;
}
