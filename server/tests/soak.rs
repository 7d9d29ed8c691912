//! A bounded soak: hundreds of library clients doing a random mix of every operation at once.
//! At the end every accepted request has had exactly one result, every acknowledged cmd arrived
//! exactly once, and the server's memory did not grow from one half of the run to the next.
//!
//! Size and length: CRVM_SOAK_CLIENTS (default 500) and CRVM_SOAK_SECS (default 40; set it to
//! hours for a real soak). The memory check compares the second half of the run with the
//! first: the same work must not keep growing the server.

mod common;

use common::*;
use crossbeam_channel::{Receiver, Sender};
use crvm::core::{Client, Code, Event, LoginParams};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events of all clients on one channel, tagged with the client's index.
type Tagged = (Sender<(usize, Event)>, Receiver<(usize, Event)>);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A tiny deterministic generator (xorshift), one per driver thread.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What a result event answers: the cookie (or task ID) of the request.
fn answered(e: &Event) -> Option<&str> {
    use Event::*;
    Some(match e {
        Login { cookie, .. }
        | SetDndStatus { cookie, .. }
        | GetUserStatus { cookie, .. }
        | StartUserStatusNotify { cookie, .. }
        | StopUserStatusNotify { cookie, .. }
        | CreateMeeting { cookie, .. }
        | DestroyMeeting { cookie, .. }
        | GetMeetings { cookie, .. }
        | Call { cookie, .. }
        | AcceptCall { cookie, .. }
        | RejectCall { cookie, .. }
        | HangupCall { cookie, .. } => cookie,
        CmdSent { task_id, .. } => task_id,
        _ => return None,
    })
}

// Not part of the plain `cargo test` run (it takes a while): `.ci/run` runs it on its own, with
// its figures printed: `cargo test -p crvm-server --test soak -- --ignored --nocapture`.
#[test]
#[ignore]
fn soak() {
    let clients = env("CRVM_SOAK_CLIENTS", 500) as usize;
    let secs = env("CRVM_SOAK_SECS", 40);
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config("call_timeout_s = 2"));
    let pid = s.proc.id();
    let rss_start = rss_kib(pid);

    // Every event of every client lands on one channel, tagged with the client's index.
    let (tx, rx): Tagged = crossbeam_channel::unbounded();
    let users: Vec<Client> = (0..clients)
        .map(|i| {
            let tx = tx.clone();
            Client::new(
                &s.addr.to_string(),
                Box::new(move |e: &Event| {
                    let _ = tx.send((i, e.clone()));
                }),
            )
            .unwrap()
        })
        .collect();
    let users = Arc::new(users);
    let seq = Arc::new(AtomicU64::new(0));
    let next_cookie = move |i: usize| format!("u{i}-{}", seq.fetch_add(1, Ordering::Relaxed));
    let outstanding = Arc::new(parking_lot::Mutex::new(HashSet::<String>::new()));

    let login_start = Instant::now();
    for (i, c) in users.iter().enumerate() {
        let cookie = format!("login-{i}");
        outstanding.lock().insert(cookie.clone());
        c.login(&LoginParams {
            auth_acnt: "demo",
            auth_pswd: "demo-secret",
            priv_acnt: &format!("u{i}"),
            cookie: &cookie,
            ..Default::default()
        })
        .unwrap();
    }

    // The reactor: answers calls (accept, reject or ignore), hangs up accepted ones, and keeps
    // the books: each result must answer an outstanding request, once.
    let stop = Arc::new(AtomicBool::new(false));
    let reactor = {
        let (users, outstanding, stop) = (users.clone(), outstanding.clone(), stop.clone());
        let next_cookie = next_cookie.clone();
        std::thread::spawn(move || {
            let mut results = 0u64;
            let mut cmds_seen = HashSet::new();
            let mut errors = Vec::new();
            let mut logged_in = 0;
            loop {
                let Ok((i, e)) = rx.recv_timeout(Duration::from_millis(200)) else {
                    if stop.load(Ordering::SeqCst) && outstanding.lock().is_empty() {
                        break;
                    }
                    continue;
                };
                if let Some(key) = answered(&e) {
                    if !outstanding.lock().remove(key) {
                        errors.push(format!("u{i}: unexpected or duplicate result {e:?}"));
                    }
                    results += 1;
                }
                let me = &users[i];
                let act = |f: &dyn Fn(&str) -> Result<(), Code>| {
                    let cookie = next_cookie(i);
                    outstanding.lock().insert(cookie.clone());
                    if f(&cookie).is_err() {
                        outstanding.lock().remove(&cookie); // refused: no result follows
                    }
                };
                match &e {
                    Event::Login { result: Ok(_), .. } => logged_in += 1,
                    Event::NotifyCallIn { call_id, .. } => match call_id.len() % 3 {
                        0 => act(&|c| me.accept_call(call_id, "", "", c)),
                        1 => act(&|c| me.reject_call(call_id, "", c)),
                        _ => {} // let it ring out
                    },
                    Event::NotifyCallAccepted { call_id, .. } => {
                        act(&|c| me.hungup_call(call_id, "", c))
                    }
                    // Meetings are destroyed by their creator once made, so the tenant's list
                    // (and every get_meetings answer) stays the size of the activity.
                    Event::CreateMeeting { result: Ok(m), .. } => {
                        let id = m.id;
                        act(&|c| me.destroy_meeting(id, c))
                    }
                    Event::NotifyCmdData { data, .. } if !cmds_seen.insert(data.clone()) => {
                        errors.push(format!(
                            "cmd delivered twice: {}",
                            String::from_utf8_lossy(data)
                        ));
                    }
                    Event::LineOff { code } => {
                        errors.push(format!("u{i}: line_off {}", code.get()))
                    }
                    _ => {}
                }
            }
            (results, cmds_seen.len(), logged_in, errors)
        })
    };
    while !outstanding.lock().iter().all(|k| !k.starts_with("login-")) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let login_rate = clients as f64 / login_start.elapsed().as_secs_f64();
    let rss_logged_in = rss_kib(pid);

    // Drivers: random operations from random clients until the time is up.
    let ops = Arc::new(AtomicU64::new(0));
    let half = Duration::from_secs(secs) / 2;
    let mut rss_marks = Vec::new();
    let run_start = Instant::now();
    for round in 0..2u64 {
        let deadline = Instant::now() + half;
        let drivers: Vec<_> = (0..4u64)
            .map(|d| {
                let (users, outstanding, ops) = (users.clone(), outstanding.clone(), ops.clone());
                let next_cookie = next_cookie.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (round * 4 + d + 1));
                    let n = users.len() as u64;
                    while Instant::now() < deadline {
                        let i = rng.below(n) as usize;
                        let peer = format!("u{}", rng.below(n));
                        let me = &users[i];
                        let cookie = next_cookie(i);
                        outstanding.lock().insert(cookie.clone());
                        let r = match rng.below(9) {
                            0 => me.set_dnd_status(rng.below(3) as i32, &cookie),
                            1 => me.get_user_status(&cookie),
                            // One client in ten watches presence, as in a real tenant
                            // (every watcher gets every change: O(watchers × changes)).
                            2 if i.is_multiple_of(10) => me.start_user_status_notify(&cookie),
                            2 => me.get_user_status(&cookie),
                            3 => me.stop_user_status_notify(&cookie),
                            4 => me.create_meeting("soak", 1, &cookie),
                            5 => me.destroy_meeting(rng.below(1000) as i32, &cookie), // 800
                            6 => me.get_meetings(&cookie),
                            7 => me.call(&peer, "", "", &cookie).map(|_| ()),
                            _ => {
                                outstanding.lock().remove(&cookie);
                                match me.send_cmd(&peer, cookie.as_bytes()) {
                                    Ok(task) => {
                                        outstanding.lock().insert(task);
                                        Ok(())
                                    }
                                    Err(e) => Err(e),
                                }
                            }
                        };
                        match r {
                            Ok(()) => {
                                ops.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                outstanding.lock().remove(&cookie);
                            }
                        }
                        // Keep the number in flight bounded, like an app would.
                        while outstanding.lock().len() > 4 * users.len() {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for d in drivers {
            d.join().unwrap();
        }
        // Read the RSS once every request has its result: what is still queued for slow
        // clients (on a loaded machine, many pushes) is not a leak.
        let settle = Instant::now() + Duration::from_secs(60);
        while !outstanding.lock().is_empty() {
            assert!(
                Instant::now() < settle,
                "requests without a result after 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        rss_marks.push(rss_kib(pid));
    }
    let elapsed = run_start.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (results, cmds, logged_in, errors) = reactor.join().unwrap();
    let ops = ops.load(Ordering::Relaxed);
    drop(users); // destroy: every client logs out
    println!(
        "soak: {clients} clients, {logged_in} logins at {login_rate:.0}/s; {ops} operations in \
         {:.1} s = {:.0} ops/s; {results} results; {cmds} cmds delivered once",
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64()
    );
    println!(
        "soak: server RSS {rss_start} KiB at start, {rss_logged_in} KiB logged in, {} KiB after \
         the first half, {} KiB after the second",
        rss_marks[0], rss_marks[1]
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert_eq!(logged_in, clients);
    assert!(ops > 0 && cmds > 0);
    // No leak: the second half, doing the same work, must not keep growing the server.
    assert!(
        rss_marks[1] <= rss_marks[0] + rss_marks[0] / 5 + 2048,
        "server RSS grew from {} to {} KiB",
        rss_marks[0],
        rss_marks[1]
    );
}
