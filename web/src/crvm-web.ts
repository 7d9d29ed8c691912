// crvm-web: the CloudroomVideoMgr API in the browser, over crvm's WebSocket listener.
export { CloudroomVideoMgr, CrvmError } from "./client.js";
export type { Options } from "./client.js";
export type { EventMap, EventName } from "./events.js";
export { EVENT_NAMES } from "./events.js";
export { PROTOCOL_VERSION, SUBPROTOCOL } from "./protocol.js";
export type { SocketCtor, SocketLike } from "./link.js";
