//! The `__peer` role: one crvm client in its own process (so that its peak RSS is its own),
//! logged in as `USER`, driven by the bench through lines on stdin:
//!
//! | command | answer |
//! |---|---|
//! | `file TARGET PATH` | `file_started`; later `file_rlst CODE` |
//! | `pings TARGET N SIZE WINDOW` | `pings NS…`: N cmds (send_cmd → send_cmd_rlst), at most WINDOW in flight |
//! | `autoaccept 1`/`0` | `autoaccept`: from now on, every call that rings here is (not) accepted at once, inside the `notify_call_in` callback |
//! | `setups TARGET N` | `setups NS…`: N calls, each `call` → `notify_call_accepted`, then hung up |
//! | `calls TARGET N GAP_MS WHILE` | `calls ID:T0:T1…`: N calls, each hung up at once; WHILE 1: only while this peer sends a file, 2: while it receives one |
//! | `progress` | `progress`: once the file this peer sends is moving (a `send_progress` came) |
//! | `callins N` | `callins ID:T…`: the calls that rang here since the last `callins`, once there are N |
//! | `quit` | `bye` |
//!
//! Unprompted lines: `got_file PATH` (a file arrived), `file_rlst CODE`, `line_off CODE`, and
//! `error TEXT` before exiting on failure. Times are `CLOCK_MONOTONIC` nanoseconds stamped in the
//! callback as the event is delivered, i.e. when the app sees it.

use crate::procs::mono_ns;
use crate::Res;
use crossbeam_channel::{select, Receiver};
use crvm::core::{Client, Code, Event, LoginParams};
use crvm_proto::error::code_of;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

/// No single event should take longer than this, even behind a 2 GiB transfer.
const EVENT_WAIT: Duration = Duration::from_secs(120);

pub fn main(args: &[String]) -> Res<()> {
    let [addr, user, download_dir] = args else {
        return Err("usage: crvm-bench __peer ADDR USER DOWNLOAD_DIR".into());
    };
    match run(addr, user, download_dir) {
        Ok(()) => Ok(()),
        Err(e) => {
            println!("error {e}");
            Err(e)
        }
    }
}

fn code(what: &str) -> impl Fn(Code) -> String + '_ {
    move |c| format!("{what} refused: code {}", c.get())
}

/// What the client's callback thread tells the main thread.
enum Note {
    /// An event, stamped when it was delivered.
    Event(u64, Event),
    /// The `pings` under way has room for more cmds, or is over.
    Pings,
}

/// The cmds of a `pings` under way. Their results are taken on the client's callback thread,
/// as an app counting its acknowledgements would: a burst of results then wakes the main thread
/// only when it has something to do, not once per result.
#[derive(Default)]
struct Pings {
    /// When each cmd in flight was sent, by task.
    in_flight: HashMap<String, u64>,
    samples: Vec<u64>,
    failed: Option<String>,
    /// The main thread is told when fewer than this many are in flight.
    window: usize,
}

impl Pings {
    /// Takes `ev` if it is the result of one of its cmds; returns whether to tell the main
    /// thread.
    fn take(&mut self, at: u64, ev: &Event) -> Option<bool> {
        let Event::CmdSent { task_id, result } = ev else {
            return None;
        };
        let t0 = self.in_flight.remove(task_id)?;
        match result {
            Ok(()) => self.samples.push(at - t0),
            Err(c) => self.failed = Some(format!("cmd {task_id} failed with {}", c.get())),
        }
        Some(self.in_flight.len() + 1 == self.window || self.in_flight.is_empty())
    }
}

fn run(addr: &str, user: &str, download_dir: &str) -> Res<()> {
    let (tx, events) = crossbeam_channel::unbounded();
    let pings = Arc::new(Mutex::new(Pings::default()));
    let pings_cb = Arc::clone(&pings);
    // Set once the client exists: the callback accepts calls itself, as an answering machine
    // written in C would (and as the NATS responder replies inside its own message loop).
    let answerer: Arc<OnceLock<Weak<Client>>> = Arc::new(OnceLock::new());
    let answerer_cb = Arc::clone(&answerer);
    let auto_accept = Arc::new(AtomicBool::new(false));
    let auto_accept_cb = Arc::clone(&auto_accept);
    let client = Client::new(
        addr,
        Box::new(move |e: &Event| {
            let at = mono_ns();
            if let Event::NotifyCallIn { call_id, .. } = e {
                let me = answerer_cb.get().and_then(Weak::upgrade);
                if let (true, Some(me)) = (auto_accept_cb.load(Ordering::Relaxed), me) {
                    if let Err(c) = me.accept_call(call_id, "", "", "") {
                        println!("error accept_call refused: code {}", c.get());
                    }
                    return;
                }
            }
            // Data arriving here is not looked at (the bench counts it at the sender).
            if matches!(
                e,
                Event::NotifyCmdData { .. } | Event::NotifyBufferData { .. }
            ) {
                return;
            }
            match pings_cb.lock().expect("no panics holding it").take(at, e) {
                Some(true) => drop(tx.send(Note::Pings)),
                Some(false) => {}
                None => drop(tx.send(Note::Event(at, e.clone()))),
            }
        }),
    )
    .map_err(code("Client::new"))?;
    let client = Arc::new(client);
    let _ = answerer.set(Arc::downgrade(&client));
    client
        .set_option("download_dir", download_dir)
        .map_err(code("download_dir"))?;
    client
        .login(&LoginParams {
            auth_acnt: "demo",
            auth_pswd: "demo-secret",
            priv_acnt: user,
            ..Default::default()
        })
        .map_err(code("login"))?;
    let mut peer = Peer {
        client,
        events,
        pings,
        sending: 0,
        progress_seen: false,
        callins: Vec::new(),
        received: 0,
        auto_accept,
    };
    match peer.wait(|e| matches!(e, Event::Login { .. }))? {
        (_, Event::Login { result: Ok(_), .. }) => {}
        (_, e) => return Err(format!("login failed: {e:?}").into()),
    }
    println!("ready");

    let (cmd_tx, commands) = crossbeam_channel::unbounded::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if cmd_tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        select! {
            recv(commands) -> cmd => {
                // End of stdin: the bench is gone.
                let Ok(cmd) = cmd else { break };
                if cmd == "quit" {
                    break;
                }
                peer.command(&cmd)?;
            }
            recv(peer.events) -> note => {
                if let Note::Event(at, ev) = note.map_err(|_| "event channel closed")? {
                    peer.on_event(at, ev);
                }
            }
        }
    }
    peer.client.destroy();
    println!("bye");
    Ok(())
}

struct Peer {
    client: Arc<Client>,
    events: Receiver<Note>,
    pings: Arc<Mutex<Pings>>,
    /// Files this peer is sending.
    sending: usize,
    /// A `send_progress` arrived since the last `file` command.
    progress_seen: bool,
    /// Calls that rang here: call ID and when.
    callins: Vec<(String, u64)>,
    /// Files received so far.
    received: usize,
    /// Accept every call that rings here (in the callback).
    auto_accept: Arc<AtomicBool>,
}

impl Peer {
    /// What happens to an event nobody is waiting for.
    fn on_event(&mut self, at: u64, ev: Event) {
        match ev {
            Event::NotifyFileData { path, .. } => {
                self.received += 1;
                println!("got_file {path}");
            }
            Event::FileSent { result, .. } => {
                self.sending = self.sending.saturating_sub(1);
                println!("file_rlst {}", code_of(&result));
            }
            Event::SendProgress { .. } => self.progress_seen = true,
            Event::NotifyCallIn { call_id, .. } => self.callins.push((call_id, at)),
            Event::LineOff { code } => println!("line_off {}", code.get()),
            _ => {}
        }
    }

    fn next_note(&self) -> Res<Note> {
        let note = self.events.recv_timeout(EVENT_WAIT);
        Ok(note.map_err(|_| "no event within 120 s")?)
    }

    fn next_event(&self) -> Res<(u64, Event)> {
        loop {
            if let Note::Event(at, ev) = self.next_note()? {
                return Ok((at, ev));
            }
        }
    }

    /// The next event that `want` accepts, handling the others as usual.
    fn wait(&mut self, want: impl Fn(&Event) -> bool) -> Res<(u64, Event)> {
        loop {
            let (at, ev) = self.next_event()?;
            if want(&ev) {
                return Ok((at, ev));
            }
            self.on_event(at, ev);
        }
    }

    fn command(&mut self, line: &str) -> Res<()> {
        let words: Vec<&str> = line.splitn(3, ' ').collect();
        match words[..] {
            ["file", target, path] => {
                self.client
                    .send_file(target, path)
                    .map_err(code("send_file"))?;
                self.sending += 1;
                self.progress_seen = false;
                println!("file_started");
            }
            ["pings", target, rest] => {
                let args: Vec<u64> = rest.split(' ').filter_map(|w| w.parse().ok()).collect();
                let [n, size, window] = args[..] else {
                    return Err(format!("bad command {line:?}").into());
                };
                let samples = self.pings(target, n, size as usize, window.max(1) as usize)?;
                println!("pings {}", join(samples.iter()));
            }
            ["autoaccept", on] => {
                self.auto_accept.store(on == "1", Ordering::Relaxed);
                println!("autoaccept");
            }
            ["setups", target, n] => {
                let samples = self.setups(target, n.parse()?)?;
                println!("setups {}", join(samples.iter()));
            }
            ["calls", target, rest] => {
                let args: Vec<u64> = rest.split(' ').filter_map(|w| w.parse().ok()).collect();
                let [n, gap_ms, during] = args[..] else {
                    return Err(format!("bad command {line:?}").into());
                };
                let during =
                    During::parse(during).ok_or_else(|| format!("bad command {line:?}"))?;
                let calls = self.calls(target, n, gap_ms, during)?;
                let calls = calls.iter().map(|(id, t0, t1)| format!("{id}:{t0}:{t1}"));
                println!("calls {}", join(calls));
            }
            ["progress"] => {
                while self.sending > 0 && !self.progress_seen {
                    let (at, ev) = self.next_event()?;
                    self.on_event(at, ev);
                }
                println!("progress");
            }
            ["callins", n] => {
                // The caller's `call_success` may overtake this side's `notify_call_in`.
                while self.callins.len() < n.parse()? {
                    let (at, ev) = self.next_event()?;
                    self.on_event(at, ev);
                }
                let callins = self.callins.drain(..).map(|(id, t)| format!("{id}:{t}"));
                println!("callins {}", join(callins));
            }
            _ => return Err(format!("bad command {line:?}").into()),
        }
        Ok(())
    }

    /// `n` cmds of `size` bytes, at most `window` in flight: nanoseconds from each `send_cmd`
    /// to its `send_cmd_rlst`.
    fn pings(&mut self, target: &str, n: u64, size: usize, window: usize) -> Res<Vec<u64>> {
        let data = vec![0x5a; size];
        let pings = Arc::clone(&self.pings);
        *pings.lock().expect("no panics holding it") = Pings {
            window,
            ..Default::default()
        };
        let mut sent = 0;
        loop {
            {
                // Held across each send_cmd, so that its result cannot be taken before the
                // cmd is in the table.
                let mut p = pings.lock().expect("no panics holding it");
                while sent < n && p.in_flight.len() < window {
                    let t0 = mono_ns();
                    let task = self
                        .client
                        .send_cmd(target, &data[..])
                        .map_err(code("send_cmd"))?;
                    p.in_flight.insert(task, t0);
                    sent += 1;
                }
                if let Some(e) = p.failed.take() {
                    return Err(e.into());
                }
                if p.samples.len() as u64 == n {
                    return Ok(std::mem::take(&mut p.samples));
                }
            }
            match self.next_note()? {
                Note::Pings => {}
                Note::Event(at, ev) => self.on_event(at, ev),
            }
        }
    }

    /// Hangs up call `id` and waits until that succeeded.
    fn hang_up(&mut self, id: &str) -> Res<()> {
        self.client
            .hungup_call(id, "", "")
            .map_err(code("hungup_call"))?;
        let (_, ev) =
            self.wait(|e| matches!(e, Event::HangupCall { call_id, .. } if call_id == id))?;
        if !matches!(ev, Event::HangupCall { result: Ok(()), .. }) {
            return Err(format!("hang-up failed: {ev:?}").into());
        }
        Ok(())
    }

    /// `n` calls to `target` (which accepts them), one at a time: nanoseconds from `call` to
    /// `notify_call_accepted`; each call is hung up before the next.
    fn setups(&mut self, target: &str, n: u64) -> Res<Vec<u64>> {
        let mut samples = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let t0 = mono_ns();
            let id = self.client.call(target, "", "", "").map_err(code("call"))?;
            let (t1, ev) = self.wait(|e| match e {
                Event::NotifyCallAccepted { call_id, .. }
                | Event::NotifyCallRejected { call_id, .. }
                | Event::Call {
                    call_id,
                    result: Err(_),
                    ..
                } => *call_id == id,
                _ => false,
            })?;
            if !matches!(ev, Event::NotifyCallAccepted { .. }) {
                return Err(format!("call not accepted: {ev:?}").into());
            }
            self.hang_up(&id)?;
            samples.push(t1 - t0);
        }
        Ok(samples)
    }

    /// Up to `n` calls to `target`, each hung up as soon as it succeeded, `gap_ms` apart: call ID,
    /// when `call` was made and when `call_success` came. [`During::Sending`] waits until data
    /// is moving first and stops (after at least one call) once no file is being sent;
    /// [`During::Receiving`] stops (after at least one call) once a file has arrived here.
    fn calls(
        &mut self,
        target: &str,
        n: u64,
        gap_ms: u64,
        during: During,
    ) -> Res<Vec<(String, u64, u64)>> {
        while during == During::Sending && self.sending > 0 && !self.progress_seen {
            let (at, ev) = self.next_event()?;
            self.on_event(at, ev);
        }
        let received = self.received;
        let mut out = Vec::new();
        for i in 0..n {
            let over = match during {
                During::Always => false,
                During::Sending => self.sending == 0,
                During::Receiving => self.received > received,
            };
            if i > 0 && over {
                break;
            }
            let t0 = mono_ns();
            let id = self.client.call(target, "", "", "").map_err(code("call"))?;
            let (t1, ev) =
                self.wait(|e| matches!(e, Event::Call { call_id, .. } if *call_id == id))?;
            if !matches!(ev, Event::Call { result: Ok(()), .. }) {
                return Err(format!("call failed: {ev:?}").into());
            }
            self.hang_up(&id)?;
            out.push((id, t0, t1));
            std::thread::sleep(Duration::from_millis(gap_ms));
        }
        Ok(out)
    }
}

/// Which calls of a `calls` command are made (its WHILE word).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum During {
    /// All of them.
    Always,
    /// Only while the caller sends a file.
    Sending,
    /// Only while the caller receives a file (the other side's transfer is under way).
    Receiving,
}

impl During {
    pub fn word(self) -> u64 {
        match self {
            During::Always => 0,
            During::Sending => 1,
            During::Receiving => 2,
        }
    }

    fn parse(w: u64) -> Option<During> {
        [During::Always, During::Sending, During::Receiving]
            .into_iter()
            .find(|d| d.word() == w)
    }
}

fn join<T: ToString>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
}
