// The wire protocol as the web client speaks it (docs/PROTOCOL.md). The protocol version lives
// here and nowhere else in the package; test/protocol-version.test.js fails when it differs
// from `PROTOCOL_VERSION` in proto/src/msg.rs.

/** The wire protocol version this client speaks (`hello.ver`, subprotocol `crvm.<version>`). */
export const PROTOCOL_VERSION = 6;
/** The WebSocket subprotocol naming the wire protocol version. */
export const SUBPROTOCOL = `crvm.${PROTOCOL_VERSION}`;

export const KIND_CONTROL = 1;
export const KIND_DATA = 2;
export const KIND_PING = 3;
export const KIND_PONG = 4;
export const KIND_ACK = 5;
export const HEADER = 24;

/** Limits and flow-control constants (proto/src/msg.rs). */
export const CMD_MAX = 51_200;
export const CMD_WINDOW = 2048;
export const CMD_WINDOW_BYTES = 4 * 1024 * 1024;
export const CHUNK = 128 * 1024;
export const WINDOW = 4 * 1024 * 1024;
export const ACK_EVERY = 512 * 1024;
export const MAX_OUTGOING = 8;
export const OPAQUE_MAX = 8 * 1024;
export const USER_ID_MAX = 128;
export const ID_MAX = 63;
/** A side that only receives sends a standalone ack after this many numbered frames. */
export const ACK_FRAMES = 32;

/** One frame as read from a WebSocket message. */
export interface Frame {
  kind: number;
  seq: number;
  ack: number;
  payload: Uint8Array;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function putU64(v: DataView, at: number, n: number): void {
  v.setUint32(at, Math.floor(n / 2 ** 32));
  v.setUint32(at + 4, n >>> 0);
}

function getU64(v: DataView, at: number): number {
  return v.getUint32(at) * 2 ** 32 + v.getUint32(at + 4);
}

/** Encodes a frame; `seq` and `ack` may be patched later with `stamp`. */
export function frame(kind: number, payload: Uint8Array, seq = 0, ack = 0): Uint8Array {
  const out = header(kind, payload.length, seq, ack);
  out.set(payload, HEADER);
  return out;
}

/** A frame with room for a payload of `len` bytes (still zero), its header written. */
function header(kind: number, len: number, seq = 0, ack = 0): Uint8Array {
  const out = new Uint8Array(HEADER + len);
  const v = new DataView(out.buffer);
  v.setUint32(0, len);
  out[4] = kind;
  putU64(v, 8, seq);
  putU64(v, 16, ack);
  return out;
}

/** Writes `seq` and `ack` into an encoded frame's header. */
export function stamp(f: Uint8Array, seq: number, ack: number): void {
  const v = new DataView(f.buffer, f.byteOffset, HEADER);
  putU64(v, 8, seq);
  putU64(v, 16, ack);
}

/** Decodes one WebSocket message, which must hold exactly one frame. */
export function parseFrame(bytes: Uint8Array): Frame {
  if (bytes.length < HEADER) throw new Error("short frame");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const len = v.getUint32(0);
  if (len !== bytes.length - HEADER) throw new Error("frame length mismatch");
  if (bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) throw new Error("flags set");
  return { kind: bytes[4], seq: getU64(v, 8), ack: getU64(v, 16), payload: bytes.subarray(HEADER) };
}

/**
 * A control frame: the JSON message and its optional attachment, written straight into the
 * frame (one allocation, one copy of the attachment).
 */
export function controlFrame(msg: unknown, attachment?: Uint8Array): Uint8Array {
  const json = enc.encode(JSON.stringify(msg));
  const out = header(KIND_CONTROL, 4 + json.length + (attachment ? attachment.length : 0));
  new DataView(out.buffer).setUint32(HEADER, json.length);
  out.set(json, HEADER + 4);
  if (attachment) out.set(attachment, HEADER + 4 + json.length);
  return out;
}

export interface Message {
  t: string;
  c?: any;
}

export function parseControl(payload: Uint8Array): { msg: Message; attachment: Uint8Array } {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const n = v.getUint32(0);
  if (4 + n > payload.length) throw new Error("control length mismatch");
  const msg = JSON.parse(dec.decode(payload.subarray(4, 4 + n))) as Message;
  return { msg, attachment: payload.subarray(4 + n) };
}

/**
 * A data frame: the stream id and the chunk, written straight into the frame. On the sending
 * path every byte is copied once here and nowhere else in crvm-web.
 */
/** A data frame of stream `sid` carrying `parts`, one after the other. */
export function dataFrame(sid: number, parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = header(KIND_DATA, 8 + len);
  putU64(new DataView(out.buffer), HEADER, sid);
  let at = HEADER + 8;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function parseData(payload: Uint8Array): { sid: number; bytes: Uint8Array } {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.length);
  return { sid: getU64(v, 0), bytes: payload.subarray(8) };
}

/** Unnumbered messages: the handshake of a connection. */
export const UNNUMBERED = new Set(["hello", "resume", "welcome", "resumed", "resume_failed", "retry", "moved"]);

/**
 * When a stream's receiver acknowledges: once this many bytes are unacknowledged, i.e.
 * min(2 × the last chunk's length, 512 KiB), so that a sender with small chunks is not held up.
 */
export function ackThreshold(lastChunk: number): number {
  return Math.min(2 * lastChunk, ACK_EVERY);
}

export function utf8Len(s: string): number {
  return enc.encode(s).length;
}
