// The events of CloudroomVideoMgr: the seed's 36 plus lineReconnecting and lineResumed, in the
// order of the library's events table (src/events.rs). test/events.test.js fails when the
// library's table has an event this list lacks, so a new event cannot be forgotten here.

/** Each event's handler parameters, in the seed's order. */
export interface EventMap {
  loginSuccess: (usrID: string, cookie: string) => void;
  loginFail: (sdkErr: number, cookie: string) => void;
  lineOff: (sdkErr: number) => void;
  setDNDStatusSuccess: (cookie: string) => void;
  setDNDStatusFail: (sdkErr: number, cookie: string) => void;
  getUserStatusSuccess: (usersStatus: string, cookie: string) => void;
  getUserStatusFail: (sdkErr: number, cookie: string) => void;
  notifyUserStatus: (userStatus: string, cookie: string) => void;
  startUserStatusNotifyRslt: (sdkErr: number, cookie: string) => void;
  stopUserStatusNotifyRslt: (sdkErr: number, cookie: string) => void;
  createMeetingSuccess: (meetObj: string, cookie: string) => void;
  createMeetingFail: (sdkErr: number, cookie: string) => void;
  destroyMeetingRslt: (sdkErr: number, cookie: string) => void;
  getMeetingsSuccess: (jsonMeetings: string, cookie: string) => void;
  getMeetingsFail: (sdkErr: number, cookie: string) => void;
  callSuccess: (callID: string, cookie: string) => void;
  callFail: (callID: string, sdkErr: number, cookie: string) => void;
  acceptCallSuccess: (callID: string, cookie: string) => void;
  acceptCallFail: (callID: string, sdkErr: number, cookie: string) => void;
  rejectCallSuccess: (callID: string, cookie: string) => void;
  rejectCallFail: (callID: string, sdkErr: number, cookie: string) => void;
  hungupCallSuccess: (callID: string, cookie: string) => void;
  hungupCallFail: (callID: string, sdkErr: number, cookie: string) => void;
  notifyCallIn: (callID: string, meetObj: string, callerID: string, usrExtDat: string) => void;
  notifyCallAccepted: (callID: string, usrExtDat: string, meetObj: string) => void;
  notifyCallRejected: (callID: string, reason: number, usrExtDat: string) => void;
  notifyCallHungup: (callID: string, usrExtDat: string) => void;
  sendCmdRlst: (taskID: string, sdkErr: number, cookie: string) => void;
  sendBufferRlst: (taskID: string, sdkErr: number, cookie: string) => void;
  sendFileRlst: (taskID: string, fileName: string, sdkErr: number, cookie: string) => void;
  sendProgress: (taskID: string, sendedLen: number, totalLen: number, cookie: string) => void;
  cancelSendRlst: (taskID: string, sdkErr: number, cookie: string) => void;
  notifyCmdData: (sourceUserId: string, data: string) => void;
  notifyBufferData: (sourceUserId: string, data: string) => void;
  /** `file` stands where the seed has `tmpFile`: the received bytes, named after the sender's file. */
  notifyFileData: (sourceUserId: string, file: Blob, orgFileName: string) => void;
  notifyCancelSend: (sendId: string) => void;
  lineReconnecting: (sdkErr: number) => void;
  lineResumed: (offlineMs: number) => void;
}

export type EventName = keyof EventMap;

/** Every event name, in the order of the library's table. */
export const EVENT_NAMES: readonly EventName[] = [
  "loginSuccess", "loginFail", "lineOff", "setDNDStatusSuccess", "setDNDStatusFail",
  "getUserStatusSuccess", "getUserStatusFail", "notifyUserStatus", "startUserStatusNotifyRslt",
  "stopUserStatusNotifyRslt", "createMeetingSuccess", "createMeetingFail", "destroyMeetingRslt",
  "getMeetingsSuccess", "getMeetingsFail", "callSuccess", "callFail", "acceptCallSuccess",
  "acceptCallFail", "rejectCallSuccess", "rejectCallFail", "hungupCallSuccess", "hungupCallFail",
  "notifyCallIn", "notifyCallAccepted", "notifyCallRejected", "notifyCallHungup", "sendCmdRlst",
  "sendBufferRlst", "sendFileRlst", "sendProgress", "cancelSendRlst", "notifyCmdData",
  "notifyBufferData", "notifyFileData", "notifyCancelSend", "lineReconnecting", "lineResumed",
];
