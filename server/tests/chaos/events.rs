//! How the chaos test's users react to their events, and what each event writes in the ledger.

use std::time::{Duration, Instant};

use crvm::core::Event;
use crvm_proto::error::code_of;

use super::traffic::{Later, Msg, Traffic};

/// Which party of a call client (s, g) is: the caller (true) or the callee.
fn is_caller(t: &Traffic, call: &str, s: usize, g: usize) -> Option<bool> {
    let c = t.calls.get(call)?;
    if c.caller == (s, g) {
        Some(true)
    } else if c.callee == s && c.callee_gen == Some(g) {
        Some(false)
    } else {
        None
    }
}

impl Traffic {
    /// The call of client (s, g) ended for it; `notified` when by a notification.
    fn call_ended(&mut self, call: &str, s: usize, g: usize, notified: bool, what: &str) {
        let name = &self.slots[s].name;
        let _ = what;
        match is_caller(self, call, s, g) {
            Some(caller) => {
                let c = self.calls.get_mut(call).unwrap();
                if caller {
                    c.caller_ends += 1;
                    c.caller_notified |= notified;
                } else {
                    c.callee_ends += 1;
                    c.callee_notified |= notified;
                }
            }
            None => self
                .ledger
                .fail(format!("{name}#{g}: {what} of call {call}, not its party")),
        }
        let inst = &mut self.slots[s].insts[g];
        if inst.call.as_deref() == Some(call) {
            inst.call = None;
        }
    }

    pub fn handle(&mut self, m: Msg) {
        let (s, g) = (m.slot, m.gen);
        let name = self.slots[s].name.clone();
        let call = match &m.ev {
            Event::Call { call_id, .. }
            | Event::AcceptCall { call_id, .. }
            | Event::RejectCall { call_id, .. }
            | Event::HangupCall { call_id, .. }
            | Event::NotifyCallIn { call_id, .. }
            | Event::NotifyCallAccepted { call_id, .. }
            | Event::NotifyCallRejected { call_id, .. }
            | Event::NotifyCallHungup { call_id, .. } => Some(call_id.clone()),
            _ => None,
        };
        if let Some(c) = call {
            let line = format!("{name}#{g}: {}", m.ev.summary());
            self.trace(&c, line);
        }
        match &m.ev {
            Event::Login { result, .. } => {
                let code = code_of(result);
                self.answered(&m, "login".into(), code);
                if code == 0 {
                    self.slots[s].insts[g].logged_in = true;
                    if s < self.subscribers {
                        self.slots[s].insts[g].view.clear();
                        let r = self.slots[s].insts[g]
                            .client
                            .start_user_status_notify("sub");
                        let req = self.req("subscribe", None, "none", 0);
                        self.made(s, "sub:sub".into(), r, req);
                    }
                } else {
                    // Refused: logged in again a little later (a new client).
                    self.slots[s].insts[g].ended = Some((code, m.at));
                    self.slots[s].relogin = Some(Instant::now() + Duration::from_millis(300));
                }
            }
            Event::LineOff { code } => {
                let inst = &mut self.slots[s].insts[g];
                inst.ended = Some((code.get(), m.at));
                let node = inst.node;
                self.ledger.line_off(s, g, node, code.get(), m.at);
                if let Some(call) = inst.call.take() {
                    self.calls.get_mut(&call).unwrap().lost = true;
                }
                if g + 1 == self.slots[s].insts.len() {
                    let d = self.rng.range(100, 500);
                    self.slots[s].relogin = Some(Instant::now() + Duration::from_millis(d));
                }
            }
            Event::LineReconnecting { .. } => self.ledger.count("reconnecting"),
            Event::LineResumed { offline_ms } => {
                self.ledger.count("resumed");
                let f = self.fault_now();
                self.ledger.wait(f, "resume", *offline_ms);
            }
            Event::SetDndStatus { result, cookie } => {
                let code = code_of(result);
                if let Some(req) = self.answered(&m, format!("dnd:{cookie}"), code) {
                    if code == 0 {
                        self.slots[s].insts[g].dnd = req.value;
                    }
                }
            }
            Event::StartUserStatusNotify { result, cookie } => {
                let code = code_of(result);
                self.answered(&m, format!("sub:{cookie}"), code);
                self.slots[s].insts[g].subscribed = code == 0;
            }
            Event::NotifyUserStatus { status, .. } => {
                self.slots[s].insts[g].view.insert(
                    status.user_id.clone(),
                    (status.user_status, status.dnd_type),
                );
            }
            Event::GetUserStatus { result, cookie } => {
                let code = code_of(result);
                self.answered(&m, format!("get:{cookie}"), code);
                if let Ok(list) = result {
                    self.ledger.truth_of(s, g, list);
                }
            }
            Event::Call {
                call_id, result, ..
            } => {
                let code = code_of(result);
                self.answered(&m, format!("call:{call_id}"), code);
                if code != 0 {
                    self.call_ended(call_id, s, g, false, &format!("call_fail {code}"));
                }
            }
            Event::NotifyCallIn { call_id, .. } => {
                let Some(c) = self.calls.get_mut(call_id) else {
                    self.ledger
                        .fail(format!("{name}#{g}: rang by unknown call {call_id}"));
                    return;
                };
                if c.callee != s || c.callee_gen.is_some() {
                    self.ledger
                        .fail(format!("{name}#{g}: call {call_id} rang twice or wrongly"));
                    return;
                }
                c.callee_gen = Some(g);
                let probe = c.probe;
                let inst = &mut self.slots[s].insts[g];
                if let Some(other) = inst.call.clone() {
                    let own = inst.pending.contains_key(&format!("call:{other}"));
                    let rec = self.calls.get_mut(&other).unwrap();
                    if own && rec.caller == (s, g) {
                        // Its own call, not answered yet, crossed this one: it will get 601.
                        rec.raced = true;
                    } else {
                        let how = rec.how.join("\n    ");
                        self.ledger.fail(format!(
                            "{name}#{g}: call {call_id} rang while in call {other}:\n    {how}"
                        ));
                    }
                }
                let inst = &mut self.slots[s].insts[g];
                inst.call = Some(call_id.clone());
                let d = if probe { 0 } else { self.rng.range(20, 400) };
                self.later.push((
                    Instant::now() + Duration::from_millis(d),
                    Later::Answer {
                        slot: s,
                        gen: g,
                        call: call_id.clone(),
                    },
                ));
            }
            Event::AcceptCall {
                call_id, result, ..
            } => {
                let code = code_of(result);
                self.answered(&m, format!("accept:{call_id}"), code);
                if code == 0 {
                    let caller = self.calls[call_id].caller;
                    let by = if self.rng.pct(50) { caller } else { (s, g) };
                    let d = self.rng.range(200, 1500);
                    self.later.push((
                        Instant::now() + Duration::from_millis(d),
                        Later::Hangup {
                            slot: by.0,
                            gen: by.1,
                            call: call_id.clone(),
                        },
                    ));
                }
            }
            Event::RejectCall {
                call_id, result, ..
            } => {
                let code = code_of(result);
                self.answered(&m, format!("reject:{call_id}"), code);
                if code == 0 {
                    self.call_ended(call_id, s, g, false, "rejected it");
                }
            }
            Event::HangupCall {
                call_id, result, ..
            } => {
                let code = code_of(result);
                self.answered(&m, format!("hangup:{call_id}"), code);
                if code == 0 {
                    self.call_ended(call_id, s, g, false, "hung up");
                }
            }
            Event::NotifyCallAccepted { .. } => {}
            Event::NotifyCallRejected {
                call_id, reason, ..
            } => {
                let what = format!("notify_call_rejected {}", reason.get());
                self.call_ended(call_id, s, g, true, &what);
            }
            Event::NotifyCallHungup { call_id, .. } => {
                self.call_ended(call_id, s, g, true, "notify_call_hungup");
            }
            Event::CmdSent { task_id, result } => {
                let code = code_of(result);
                self.answered(&m, format!("cmd:{task_id}"), code);
                self.ledger.cmd_result(task_id, code);
            }
            Event::NotifyCmdData { data, .. } => {
                let text = String::from_utf8_lossy(data).into_owned();
                self.ledger.cmd_delivered(s, &text);
            }
            Event::FileSent {
                task_id, result, ..
            } => {
                let code = code_of(result);
                self.answered(&m, format!("file:{task_id}"), code);
                self.ledger.file_result(task_id, code);
            }
            Event::NotifyFileData { path, .. } => {
                let data = std::fs::read(path).unwrap_or_default();
                let id = data
                    .split(|&b| b == b'\n')
                    .next()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .unwrap_or_default();
                self.ledger.file_delivered(&id);
                let _ = std::fs::remove_file(path);
            }
            Event::NotifyCancelSend { .. } => self.ledger.count("transfer cancelled"),
            Event::SendProgress { .. } => {}
            other => self
                .ledger
                .fail(format!("{name}#{g}: unexpected {other:?}")),
        }
    }
}
