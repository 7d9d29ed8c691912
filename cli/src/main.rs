//! `crvm`: a command-line client for crvm-server on the library's Rust core (`crvm::core`).
//! docs/CLI.md documents every command, output format and exit code.

mod args;
mod help;
mod progress;
mod session;
mod signals;

use args::{Command, Global, Meetings, Stop};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use crvm::core::{Event, Meeting, UserStatus};
use serde_json::{json, Value};
use session::{done, Fail, Out, Session, EXIT_OK, EXIT_USAGE};
use std::time::{Duration, Instant};

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    signals::install();
    let mut argv = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => argv.push(s),
            Err(a) => return usage(&format!("argument {a:?} is not UTF-8")),
        }
    }
    let (g, cmd) = match args::parse(&argv) {
        Ok(parsed) => parsed,
        Err(Stop::Print(text)) => {
            print!("{text}");
            return EXIT_OK;
        }
        Err(Stop::Usage(msg)) => {
            eprint!("{msg}");
            return EXIT_USAGE;
        }
        Err(Stop::NoCommand) => {
            eprintln!("{}", help::MAIN);
            return EXIT_USAGE;
        }
    };
    let result = match cmd {
        Command::Login => login(&g),
        Command::Status { watch } => status(&g, watch),
        Command::Dnd { value } => dnd(&g, &value),
        Command::Call { peer, hangup_after } => call(&g, peer, hangup_after),
        Command::Answer {
            reject,
            from,
            hangup_after,
        } => answer(&g, from, reject, hangup_after),
        Command::SendCmd { to, text } => send_cmd(&g, to, text),
        Command::SendFile {
            to,
            path,
            no_progress,
        } => send_file(&g, to, path, no_progress),
        Command::Receive { dir, count } => receive(&g, &dir, count),
        Command::Meetings { action } => meetings(&g, action.unwrap_or(Meetings::List)),
        Command::Completions { .. } | Command::Man => unreachable!("printed by args::parse"),
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(f) => {
            f.report(&Out { json: g.json });
            f.exit_code()
        }
    }
}

fn usage(msg: &str) -> i32 {
    eprintln!("crvm: {msg}\n(see `crvm --help`)");
    EXIT_USAGE
}

fn login(g: &Global) -> Result<(), Fail> {
    let s = Session::login(g, &[])?;
    s.out
        .emit(json!({"event": "logged_in", "user": s.user}), || {
            Some(format!("logged in as {}", s.user))
        });
    Ok(())
}

// ----- presence ------------------------------------------------------------------------------

fn status_text(status: i32) -> &'static str {
    match status {
        0 => "offline",
        1 => "online",
        2 => "in a call",
        3 => "in a meeting",
        _ => "unknown",
    }
}

/// Prints one status: with `--json` its pinned object (`{"userID":..,"userStatus":..,
/// "DNDType":..}`) plus `event`.
fn print_status(out: &Out, event: &str, st: &UserStatus) {
    let mut obj = json!(st);
    obj["event"] = event.into();
    out.emit(obj, || {
        let dnd = match st.dnd_type {
            0 => "dnd off".to_owned(),
            1 => "dnd on".to_owned(),
            n => format!("dnd on ({n})"),
        };
        Some(format!(
            "{}: {}, {dnd}",
            st.user_id,
            status_text(st.user_status)
        ))
    });
}

fn status(g: &Global, watch: bool) -> Result<(), Fail> {
    let mut s = Session::login(g, &[])?;
    let deadline = s.deadline;
    // Subscribe first so that no change falls between the list and the subscription; changes
    // that arrive before the list are printed after it.
    let mut early: Vec<UserStatus> = Vec::new();
    if watch {
        s.client
            .start_user_status_notify("")
            .map_err(|c| Fail::code("status --watch", c))?;
        s.wait(deadline, "subscribing", |_, ev| match ev {
            Event::StartUserStatusNotify { result, .. } => done("status --watch failed", result),
            _ => Ok(None),
        })?;
    }
    s.client
        .get_user_status("")
        .map_err(|c| Fail::code("status", c))?;
    let list = s.wait(deadline, "getting the status", |_, ev| match ev {
        Event::GetUserStatus { result, .. } => done("status failed", result),
        Event::NotifyUserStatus { status, .. } => {
            early.push(status);
            Ok(None)
        }
        _ => Ok(None),
    })?;
    for st in &list {
        print_status(&s.out, "status", st);
    }
    if !watch {
        return Ok(());
    }
    let user = s.user.clone();
    s.out.emit(
        json!({"event": "ready", "user": user, "watching": true}),
        || {
            Some(format!(
                "ready: {user} is watching for changes (Ctrl-C to stop)"
            ))
        },
    );
    for st in &early {
        print_status(&s.out, "status_changed", st);
    }
    let r: Result<(), Fail> = s.wait(None, "", |s, ev| {
        if let Event::NotifyUserStatus { status, .. } = ev {
            print_status(&s.out, "status_changed", &status);
        }
        Ok(None)
    });
    match r {
        Err(Fail::Interrupted(_)) => Ok(()),
        other => other,
    }
}

fn dnd(g: &Global, value: &str) -> Result<(), Fail> {
    let value: i32 = match value {
        "on" => 1,
        "off" => 0,
        n => n
            .parse()
            .map_err(|_| Fail::Usage(format!("dnd wants on, off or an integer, not {n:?}")))?,
    };
    let mut s = Session::login(g, &[])?;
    s.client
        .set_dnd_status(value, "")
        .map_err(|c| Fail::code("dnd", c))?;
    let deadline = s.deadline;
    s.wait(deadline, "setting dnd", |_, ev| match ev {
        Event::SetDndStatus { result, .. } => done("dnd failed", result),
        _ => Ok(None),
    })?;
    s.out.emit(
        json!({"event": "dnd", "user": s.user, "DNDType": value}),
        || Some(format!("dnd {}", if value == 0 { "off" } else { "on" })),
    );
    Ok(())
}

// ----- calls ---------------------------------------------------------------------------------

/// Hangs `call_id` up and waits (briefly, ignoring signals) for the server's answer.
fn hang_up(s: &mut Session, call_id: &str) {
    if s.client.hungup_call(call_id, "", "").is_err() {
        return;
    }
    let _ = s.wait_until(Session::cleanup_deadline(), false, |_, ev| match ev {
        Event::HangupCall { call_id: c, .. } if c == call_id => Ok(Some(())),
        _ => Ok(None),
    });
}

/// Hangs up if the wait for the goal was interrupted or timed out, then passes `r` on.
fn or_hang_up<T>(s: &mut Session, call_id: &str, r: Result<T, Fail>) -> Result<T, Fail> {
    if matches!(r, Err(Fail::Interrupted(_) | Fail::Timeout(_))) {
        hang_up(s, call_id);
    }
    r
}

/// A connected call: stays until the peer hangs up, a signal (we hang up) or `hangup_after`.
fn in_call(
    s: &mut Session,
    call_id: &str,
    peer: &str,
    hangup_after: Option<Duration>,
) -> Result<(), Fail> {
    s.out.emit(
        json!({"event": "connected", "call_id": call_id, "peer": peer}),
        || Some(format!("connected with {peer} (Ctrl-C hangs up)")),
    );
    let until = hangup_after.map(|d| Instant::now() + d);
    let r = s.wait_until(until, true, |_, ev| match ev {
        Event::NotifyCallHungup { call_id: c, .. } if c == call_id => Ok(Some(())),
        _ => Ok(None),
    });
    let by = match r {
        Ok(Some(())) => "peer",
        Ok(None) | Err(Fail::Interrupted(_)) => {
            hang_up(s, call_id);
            "me"
        }
        Err(e) => return Err(e),
    };
    s.out.emit(
        json!({"event": "hungup", "call_id": call_id, "by": by}),
        || {
            Some(if by == "peer" {
                format!("{peer} hung up")
            } else {
                "hung up".to_owned()
            })
        },
    );
    Ok(())
}

fn call(g: &Global, peer: String, hangup_after: Option<Duration>) -> Result<(), Fail> {
    let mut s = Session::login(g, &[])?;
    let call_id = s
        .client
        .call(&peer, "", "", "")
        .map_err(|c| Fail::code("call", c))?;
    let deadline = s.deadline;
    let id = call_id.clone();
    let r = s.wait(deadline, "waiting for the call to ring", |_, ev| match ev {
        Event::Call {
            call_id, result, ..
        } if call_id == id => done("call failed", result),
        _ => Ok(None),
    });
    or_hang_up(&mut s, &call_id, r)?;
    s.out.emit(
        json!({"event": "ringing", "call_id": call_id, "peer": peer}),
        || Some(format!("ringing {peer}...")),
    );
    let r = s.wait(deadline, "waiting for an answer", |_, ev| match ev {
        Event::NotifyCallAccepted { call_id, .. } if call_id == id => Ok(Some(())),
        Event::NotifyCallRejected {
            call_id, reason, ..
        } if call_id == id => Err(Fail::code("call not accepted", reason)),
        _ => Ok(None),
    });
    or_hang_up(&mut s, &call_id, r)?;
    in_call(&mut s, &call_id, &peer, hangup_after)
}

fn answer(
    g: &Global,
    from: Option<String>,
    reject: bool,
    hangup_after: Option<Duration>,
) -> Result<(), Fail> {
    let mut s = Session::login(g, &[])?;
    let user = s.user.clone();
    s.out.emit(
        json!({"event": "ready", "user": user, "waiting": "call"}),
        || Some(format!("ready: {user} is waiting for a call")),
    );
    let deadline = s.deadline;
    let (call_id, caller) = s.wait(deadline, "waiting for a call", |s, ev| match ev {
        Event::NotifyCallIn {
            call_id, caller_id, ..
        } => {
            if from.as_ref().is_some_and(|f| *f != caller_id) {
                // Someone else: refuse, or they would keep this user busy for them.
                let _ = s.client.reject_call(&call_id, "", "");
                s.out.emit(
                    json!({"event": "ignored", "call_id": call_id, "peer": caller_id}),
                    || Some(format!("rejected a call from {caller_id}")),
                );
                return Ok(None);
            }
            Ok(Some((call_id, caller_id)))
        }
        _ => Ok(None),
    })?;
    s.out.emit(
        json!({"event": "incoming", "call_id": call_id, "peer": caller}),
        || Some(format!("incoming call from {caller}")),
    );
    let id = call_id.clone();
    if reject {
        s.client
            .reject_call(&call_id, "", "")
            .map_err(|c| Fail::code("reject", c))?;
        s.wait(deadline, "rejecting", |_, ev| match ev {
            Event::RejectCall {
                call_id, result, ..
            } if call_id == id => done("reject failed", result),
            _ => Ok(None),
        })?;
        s.out.emit(
            json!({"event": "rejected", "call_id": call_id, "peer": caller}),
            || Some(format!("rejected the call from {caller}")),
        );
        return Ok(());
    }
    s.client
        .accept_call(&call_id, "", "", "")
        .map_err(|c| Fail::code("accept", c))?;
    let r = s.wait(deadline, "accepting", |_, ev| match ev {
        Event::AcceptCall {
            call_id, result, ..
        } if call_id == id => done("accept failed", result),
        _ => Ok(None),
    });
    or_hang_up(&mut s, &call_id, r)?;
    in_call(&mut s, &call_id, &caller, hangup_after)
}

// ----- data ----------------------------------------------------------------------------------

fn send_cmd(g: &Global, peer: String, text: String) -> Result<(), Fail> {
    let mut s = Session::login(g, &[])?;
    let task = s
        .client
        .send_cmd(&peer, text.as_bytes())
        .map_err(|c| Fail::code("send-cmd", c))?;
    let deadline = s.deadline;
    let t = task.clone();
    s.wait(deadline, "sending the cmd", |_, ev| match ev {
        Event::CmdSent { task_id, result } if task_id == t => done("send-cmd failed", result),
        _ => Ok(None),
    })?;
    let n = text.len();
    s.out.emit(
        json!({"event": "sent", "task_id": task, "to": peer, "bytes": n}),
        || Some(format!("cmd delivered to {peer} ({n} bytes)")),
    );
    Ok(())
}

fn send_file(g: &Global, peer: String, path: String, no_progress: bool) -> Result<(), Fail> {
    let mut s = Session::login(g, &[])?;
    let task = s
        .client
        .send_file(&peer, &path)
        .map_err(|c| Fail::code("send-file", c))?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let json_out = g.json;
    let mut bar = progress::Bar::new(!json_out && !no_progress && progress::stderr_is_tty());
    let mut last_json: Option<Instant> = None;
    let deadline = s.deadline;
    let t = task.clone();
    let r = s.wait(deadline, "sending the file", |s, ev| match ev {
        Event::SendProgress {
            task_id,
            sent,
            total,
        } if task_id == t => {
            bar.update(sent, total);
            let now = Instant::now();
            let due = match last_json {
                Some(l) => now - l >= Duration::from_millis(250),
                None => true,
            };
            if json_out && (due || sent >= total) {
                last_json = Some(now);
                let elapsed = bar.elapsed();
                s.out.json_line(json!({
                    "event": "progress",
                    "task_id": task_id,
                    "sent": sent,
                    "total": total,
                    "rate_bps": progress::rate(sent, elapsed).map(|r| r.round() as u64),
                    "eta_s": progress::eta(sent, total, elapsed).map(|d| d.as_secs_f64()),
                }));
            }
            Ok(None)
        }
        Event::FileSent {
            task_id, result, ..
        } if task_id == t => done("send-file failed", result),
        _ => Ok(None),
    });
    bar.finish();
    if matches!(r, Err(Fail::Interrupted(_) | Fail::Timeout(_)))
        && s.client.cancel_send(&task).is_ok()
    {
        let _ = s.wait_until(Session::cleanup_deadline(), false, |_, ev| match ev {
            Event::CancelSend { task_id, .. } | Event::FileSent { task_id, .. } if task_id == t => {
                Ok(Some(()))
            }
            _ => Ok(None),
        });
    }
    r?;
    let secs = bar.elapsed().as_secs_f64();
    s.out.emit(
        json!({"event": "sent", "task_id": task, "to": peer, "file": path, "bytes": size,
               "seconds": secs}),
        || {
            let rate = progress::rate(size, bar.elapsed())
                .map(|r| format!(", {}/s", progress::human_bytes(r as u64)))
                .unwrap_or_default();
            Some(format!(
                "sent {path} to {peer}: {} in {secs:.1} s{rate}",
                progress::human_bytes(size)
            ))
        },
    );
    Ok(())
}

fn receive(g: &Global, dir: &str, count: Option<u64>) -> Result<(), Fail> {
    let dir = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::canonicalize(dir))
        .map_err(|e| Fail::Usage(format!("cannot use {dir:?} as --dir: {e}")))?;
    let dir_text = dir.to_string_lossy().into_owned();
    let mut s = Session::login(g, &[("download_dir", dir_text.clone())])?;
    let user = s.user.clone();
    s.out.emit(
        json!({"event": "ready", "user": user, "dir": dir_text}),
        || Some(format!("ready: {user} is receiving into {dir_text}")),
    );
    let mut files = 0u64;
    let deadline = if count.is_some() { s.deadline } else { None };
    let r = s.wait(deadline, "waiting for files", |s, ev| {
        match ev {
            Event::NotifyFileData { from, path, name } => {
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                s.out.emit(
                    json!({"event": "file", "from": from, "name": name, "path": path,
                           "bytes": bytes}),
                    || {
                        Some(format!(
                            "file from {from}: {name} ({}) saved as {path}",
                            progress::human_bytes(bytes)
                        ))
                    },
                );
                files += 1;
                if count == Some(files) {
                    return Ok(Some(()));
                }
            }
            Event::NotifyCmdData { from, data } => {
                let data_base64 = BASE64.encode(&data);
                let text = String::from_utf8(data).ok();
                s.out.emit(
                    json!({"event": "cmd", "from": from, "data_base64": data_base64,
                           "text": text}),
                    || {
                        Some(match &text {
                            Some(t) => format!("cmd from {from}: {t}"),
                            None => format!("cmd from {from} (base64): {data_base64}"),
                        })
                    },
                );
            }
            Event::NotifyBufferData { from, data } => {
                let n = data.len();
                s.out.emit(
                    json!({"event": "buffer", "from": from, "bytes": n,
                           "data_base64": BASE64.encode(&data)}),
                    || Some(format!("buffer from {from}: {n} bytes")),
                );
            }
            Event::NotifyCancelSend { task_id } => {
                s.out
                    .emit(json!({"event": "cancelled", "task_id": task_id}), || {
                        Some(format!("transfer {task_id} cancelled by the sender"))
                    });
            }
            _ => {}
        }
        Ok(None)
    });
    match r {
        Err(Fail::Interrupted(_)) if count.is_none() => Ok(()),
        other => other,
    }
}

// ----- meetings ------------------------------------------------------------------------------

/// Prints one meeting: with `--json` its pinned object plus `event`.
fn print_meeting(out: &Out, event: &str, m: &Meeting) {
    let mut obj = json!(m);
    obj["event"] = event.into();
    out.emit(obj, || {
        let mut line = format!("{}  {:?}  by {}", m.id, m.subject, m.creator);
        if !m.pswd.is_empty() {
            line.push_str(&format!("  password {}", m.pswd));
        }
        if !m.pub_meet_url.is_empty() {
            line.push_str(&format!("  {}", m.pub_meet_url));
        }
        if event == "meeting_created" {
            line.insert_str(0, "created ");
        }
        Some(line)
    });
}

fn meetings(g: &Global, action: Meetings) -> Result<(), Fail> {
    match action {
        Meetings::List => {
            let mut s = Session::login(g, &[])?;
            s.client
                .get_meetings("")
                .map_err(|c| Fail::code("meetings", c))?;
            let deadline = s.deadline;
            let list = s.wait(deadline, "listing meetings", |_, ev| match ev {
                Event::GetMeetings { result, .. } => done("meetings failed", result),
                _ => Ok(None),
            })?;
            if list.is_empty() && !s.out.json {
                s.out.emit(Value::Null, || Some("no meetings".to_owned()));
            }
            for m in &list {
                print_meeting(&s.out, "meeting", m);
            }
            Ok(())
        }
        Meetings::Create { subject, password } => {
            let mut s = Session::login(g, &[])?;
            let pswd = i32::from(password);
            s.client
                .create_meeting(&subject, pswd, "")
                .map_err(|c| Fail::code("meetings create", c))?;
            let deadline = s.deadline;
            let m = s.wait(deadline, "creating the meeting", |_, ev| match ev {
                Event::CreateMeeting { result, .. } => done("meetings create failed", result),
                _ => Ok(None),
            })?;
            print_meeting(&s.out, "meeting_created", &m);
            Ok(())
        }
        Meetings::Destroy { id } => {
            let id: i32 = id
                .parse()
                .map_err(|_| Fail::Usage(format!("not a meeting ID: {id:?}")))?;
            let mut s = Session::login(g, &[])?;
            s.client
                .destroy_meeting(id, "")
                .map_err(|c| Fail::code("meetings destroy", c))?;
            let deadline = s.deadline;
            s.wait(deadline, "destroying the meeting", |_, ev| match ev {
                Event::DestroyMeeting { result, .. } => done("meetings destroy failed", result),
                _ => Ok(None),
            })?;
            s.out
                .emit(json!({"event": "meeting_destroyed", "ID": id}), || {
                    Some(format!("destroyed meeting {id}"))
                });
            Ok(())
        }
    }
}
