// The demo page's logic: one CloudroomVideoMgr, presence kept as a list, calls and cmds (text
// messages) with whoever is online — another tab, or a C client such as the crvm CLI.
import { CloudroomVideoMgr } from "/crvm-web.js";

const $ = (id) => document.getElementById(id);
const config = await (await fetch("/demo/config.json")).json();
const mgr = new CloudroomVideoMgr(config.ws);
const users = new Map(); // userID -> status object
let me = "";
let call = null; // { id, peer, state: "calling" | "ringing" | "connected" }
let ringing = null; // { id, peer }

const text = (s) => new TextEncoder().encode(s);
const untext = (b64) => new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));

function log(line) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${line}`;
  $("log").prepend(li);
}

function renderUsers() {
  const list = $("users");
  const to = $("to");
  const chosen = to.value;
  list.replaceChildren();
  to.replaceChildren();
  for (const [id, s] of [...users].sort()) {
    if (s.userStatus === 0) continue;
    const li = document.createElement("li");
    li.dataset.user = id;
    if (s.userStatus === 2) li.classList.add("busy");
    if (s.DNDType) li.classList.add("dnd");
    const dot = document.createElement("span");
    dot.className = "dot";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = id + (id === me ? " (you)" : s.userStatus === 2 ? " (in a call)" : "");
    li.append(dot, name);
    if (id !== me) {
      const btn = document.createElement("button");
      btn.textContent = "Call";
      btn.className = "call";
      btn.disabled = call !== null;
      btn.onclick = () => startCall(id);
      li.append(btn);
      const opt = document.createElement("option");
      opt.value = opt.textContent = id;
      to.append(opt);
    }
    list.append(li);
  }
  if ([...to.options].some((o) => o.value === chosen)) to.value = chosen;
}

function renderCall() {
  $("call").textContent = call ? `${call.state} ${call.peer}` : "no call";
  $("hangup").hidden = call === null;
  $("ringing").hidden = ringing === null;
  if (ringing) $("ringing-text").textContent = `${ringing.peer} is calling`;
  renderUsers();
}

function startCall(peer) {
  const id = mgr.call(peer, "", "", "");
  call = { id, peer, state: "calling" };
  log(`calling ${peer}`);
  renderCall();
}

mgr.on("loginSuccess", (usrID) => {
  me = usrID;
  $("me").textContent = `logged in as ${usrID}`;
  $("login").hidden = true;
  $("app").hidden = false;
  mgr.startUserStatusNotify("");
  mgr.getUserStatus("");
  log(`logged in as ${usrID}`);
});
mgr.on("loginFail", (err) => log(`login failed: ${err}`));
mgr.on("lineOff", (err) => {
  log(`logged out by the server (${err})`);
  $("me").textContent = "not logged in";
});
mgr.on("lineReconnecting", () => log("link lost, reconnecting…"));
mgr.on("lineResumed", (ms) => log(`link back after ${ms} ms`));
mgr.on("getUserStatusSuccess", (list) => {
  for (const s of JSON.parse(list)) users.set(s.userID, s);
  renderUsers();
});
mgr.on("notifyUserStatus", (st) => {
  const s = JSON.parse(st);
  const was = users.get(s.userID);
  users.set(s.userID, s);
  if (!was || was.userStatus === 0) log(`${s.userID} is online`);
  else if (s.userStatus === 0) log(`${s.userID} went offline`);
  renderUsers();
});
mgr.on("callFail", (id, err) => {
  if (call?.id === id) call = null;
  log(`call failed: ${err}`);
  renderCall();
});
mgr.on("notifyCallAccepted", (id) => {
  if (call?.id === id) call.state = "in a call with";
  log(`${call?.peer} accepted`);
  renderCall();
});
mgr.on("notifyCallRejected", (id, reason) => {
  if (call?.id === id) {
    log(`${call.peer} did not accept (${reason})`);
    call = null;
  }
  renderCall();
});
mgr.on("notifyCallIn", (id, _meet, callerID) => {
  ringing = { id, peer: callerID };
  log(`${callerID} is calling`);
  renderCall();
});
mgr.on("notifyCallHungup", (id) => {
  if (call?.id === id) log(`${call.peer} hung up`);
  if (call?.id === id) call = null;
  if (ringing?.id === id) ringing = null;
  renderCall();
});
mgr.on("acceptCallSuccess", (id) => {
  call = { id, peer: ringing?.peer ?? "", state: "in a call with" };
  ringing = null;
  renderCall();
});
mgr.on("acceptCallFail", (_id, err) => {
  ringing = null;
  log(`could not accept: ${err}`);
  renderCall();
});
mgr.on("hungupCallSuccess", () => log("hung up"));
mgr.on("notifyCmdData", (from, data) => log(`${from}: ${untext(data)}`));
mgr.on("sendCmdRlst", (_id, err) => err && log(`message not delivered (${err})`));

$("login").onsubmit = (e) => {
  e.preventDefault();
  const user = $("user").value.trim();
  mgr.login("demo", "demo-secret", user, user, "", "");
};
$("message").onsubmit = (e) => {
  e.preventDefault();
  const to = $("to").value;
  const msg = $("text").value;
  if (!to || !msg) return;
  mgr.sendCmd(to, text(msg));
  log(`to ${to}: ${msg}`);
  $("text").value = "";
};
$("accept").onclick = () => ringing && mgr.acceptCall(ringing.id, "", "", "");
$("reject").onclick = () => {
  if (!ringing) return;
  mgr.rejectCall(ringing.id, "", "");
  log(`rejected ${ringing.peer}`);
  ringing = null;
  renderCall();
};
$("hangup").onclick = () => {
  if (!call) return;
  mgr.hungupCall(call.id, "", "");
  call = null;
  renderCall();
};
window.crvmDemoReady = true;
