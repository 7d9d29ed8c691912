//! The chaos test's users: clients of the library (`crvm::core::Client`), each behind a fault
//! proxy of its own, driven from one thread that sees every event of every client in the order
//! they came. Calls (accepted, rejected, hung up by either party), sequence-numbered cmds, DND
//! changes, presence subscriptions and small files, continuously; a user whose session is lost
//! logs in again. Every request and every event is written into the [`Ledger`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use crvm::core::{Client, Event, LoginParams};
use crvm_faultproxy::Proxy;

use super::ledger::{CallRec, ErrRec, Ledger};
use super::rig::Shared;
use super::schedule::Rng;

/// An event of client instance `gen` of user `slot`, as it arrived.
pub struct Msg {
    pub slot: usize,
    pub gen: usize,
    pub at: Instant,
    pub ev: Event,
}

/// A request waiting for its result.
pub struct Req {
    pub kind: &'static str,
    pub at: Instant,
    /// The user it concerns, and the node that user was on.
    pub target: Option<(usize, usize)>,
    /// The fault under way when it was made ("none").
    pub fault: &'static str,
    pub value: i32,
}

/// One login of a user: a client of its own.
pub struct Inst {
    pub client: Client,
    /// The node its session lives on: where it logged in, then where drains moved it.
    pub node: usize,
    /// When it was made (a move read from Redis before then concerns an earlier login).
    pub since: Instant,
    pub logged_in: bool,
    /// `line_off`'s code and when.
    pub ended: Option<(i32, Instant)>,
    pub pending: HashMap<String, Req>,
    pub dnd: i32,
    pub subscribed: bool,
    /// The statuses its pushes said, since it subscribed.
    pub view: BTreeMap<String, (i32, i32)>,
    pub call: Option<String>,
    pub cmd_seq: u64,
    pub files: u64,
}

impl Inst {
    pub fn alive(&self) -> bool {
        self.logged_in && self.ended.is_none()
    }
}

pub struct Slot {
    pub name: String,
    pub insts: Vec<Inst>,
    pub relogin: Option<Instant>,
    pub next: Instant,
    pub dir: PathBuf,
}

/// What happens later: a callee's answer, a hang-up.
#[derive(Clone)]
pub enum Later {
    Answer {
        slot: usize,
        gen: usize,
        call: String,
    },
    Hangup {
        slot: usize,
        gen: usize,
        call: String,
    },
}

pub struct Traffic {
    pub slots: Vec<Slot>,
    pub calls: HashMap<String, CallRec>,
    pub later: Vec<(Instant, Later)>,
    pub rng: Rng,
    pub tx: Sender<Msg>,
    pub rx: Receiver<Msg>,
    pub nodes: Vec<SocketAddr>,
    pub sh: Arc<Shared>,
    pub ledger: Ledger,
    /// Users that subscribe to presence at each login.
    pub subscribers: usize,
    pub timeout_ms: u64,
    pub t0: Instant,
}

impl Traffic {
    pub fn new(
        n: usize,
        nodes: Vec<SocketAddr>,
        sh: Arc<Shared>,
        dir: &std::path::Path,
        seed: u64,
        ledger: Ledger,
        timeout_ms: u64,
    ) -> Traffic {
        let (tx, rx) = crossbeam_channel::unbounded();
        let now = Instant::now();
        let slots = (0..n)
            .map(|i| {
                let d = dir.join(format!("u{i}"));
                std::fs::create_dir_all(d.join("in")).unwrap();
                Slot {
                    name: format!("u{i}"),
                    insts: Vec::new(),
                    relogin: Some(now),
                    next: now,
                    dir: d,
                }
            })
            .collect();
        Traffic {
            slots,
            calls: HashMap::new(),
            later: Vec::new(),
            rng: Rng::new(seed.rotate_left(29)),
            tx,
            rx,
            nodes,
            sh,
            ledger,
            subscribers: 5,
            timeout_ms,
            t0: now,
        }
    }

    /// The kind of the fault under way, or "none".
    pub fn fault_now(&self) -> &'static str {
        match *self.sh.current.lock().unwrap() {
            Some((f, _)) => f.kind(self.timeout_ms),
            None => "none",
        }
    }

    pub fn cur(&self, s: usize) -> Option<&Inst> {
        self.slots[s].insts.last()
    }

    fn cur_alive(&self, s: usize) -> bool {
        self.cur(s).is_some_and(|i| i.alive())
    }

    /// Logs user `s` in again, as a new client, at a node that takes logins (its home first).
    fn login(&mut self, s: usize) {
        let up = self.sh.up.lock().unwrap().clone();
        let home = s % self.nodes.len();
        let Some(node) = (0..up.len())
            .map(|k| (home + k) % up.len())
            .find(|&k| up[k])
        else {
            self.slots[s].relogin = Some(Instant::now() + Duration::from_millis(200));
            return;
        };
        let proxy = Arc::new(Proxy::start(self.nodes[node]).unwrap());
        self.sh
            .client_proxies
            .lock()
            .unwrap()
            .push((node, Arc::clone(&proxy)));
        let gen = self.slots[s].insts.len();
        let tx = self.tx.clone();
        let client = Client::new(
            &proxy.addr().to_string(),
            Box::new(move |e: &Event| {
                let _ = tx.send(Msg {
                    slot: s,
                    gen,
                    at: Instant::now(),
                    ev: e.clone(),
                });
            }),
        )
        .unwrap();
        let dl = self.slots[s].dir.join("in");
        client
            .set_option("download_dir", dl.to_str().unwrap())
            .unwrap();
        client.set_option("reconnect", "on").unwrap();
        let name = self.slots[s].name.clone();
        client
            .login(&LoginParams {
                auth_acnt: "demo",
                auth_pswd: "demo-secret",
                priv_acnt: &name,
                ..Default::default()
            })
            .unwrap();
        let mut inst = Inst {
            client,
            node,
            since: Instant::now(),
            logged_in: false,
            ended: None,
            pending: HashMap::new(),
            dnd: 0,
            subscribed: false,
            view: BTreeMap::new(),
            call: None,
            cmd_seq: 0,
            files: 0,
        };
        let fault = self.fault_now();
        inst.pending
            .insert("login".into(), self.req("login", None, fault, 0));
        self.slots[s].insts.push(inst);
        self.slots[s].relogin = None;
        self.ledger.requests("login");
    }

    pub fn req(
        &self,
        kind: &'static str,
        target: Option<usize>,
        fault: &'static str,
        v: i32,
    ) -> Req {
        Req {
            kind,
            at: Instant::now(),
            target: target.and_then(|t| self.cur(t).map(|i| (t, i.node))),
            fault,
            value: v,
        }
    }

    /// Adds a line to the story of `call` (printed when something about it fails).
    pub fn trace(&mut self, call: &str, line: String) {
        let ms = self.t0.elapsed().as_millis();
        if let Some(c) = self.calls.get_mut(call) {
            c.how.push(format!("{ms} ms {line}"));
        }
    }

    /// Records request `key` of user `s`'s current client, if the library accepted it.
    pub fn made(
        &mut self,
        s: usize,
        key: String,
        r: Result<(), crvm_proto::Code>,
        req: Req,
    ) -> bool {
        match r {
            Ok(()) => {
                self.ledger.requests(req.kind);
                if let Some((_, call)) = key.split_once(':') {
                    if ["call", "accept", "reject", "hangup"].contains(&req.kind) {
                        let line = format!(
                            "{}#{} sends {}",
                            self.slots[s].name,
                            self.slots[s].insts.len() - 1,
                            req.kind
                        );
                        self.trace(call, line);
                    }
                }
                let inst = self.slots[s].insts.last_mut().unwrap();
                assert!(inst.pending.insert(key.clone(), req).is_none(), "{key}");
                true
            }
            Err(c) => {
                self.ledger.refused(req.kind, c.get());
                false
            }
        }
    }

    /// A random other user who is logged in, free and not in DND.
    fn pick_free(&mut self, s: usize) -> Option<usize> {
        for _ in 0..4 {
            let t = self.rng.below(self.slots.len() as u64) as usize;
            if t != s
                && self
                    .cur(t)
                    .is_some_and(|i| i.alive() && i.call.is_none() && i.dnd == 0)
            {
                return Some(t);
            }
        }
        None
    }

    pub fn call(&mut self, s: usize, t: usize, probe: bool) -> bool {
        let fault = self.fault_now();
        let req = self.req("call", Some(t), fault, 0);
        let callee = self.slots[t].name.clone();
        let inst = self.slots[s].insts.last().unwrap();
        let gen = self.slots[s].insts.len() - 1;
        let Ok(id) = inst.client.call(&callee, "", "", "") else {
            self.ledger.refused("call", 0);
            return false;
        };
        self.slots[s].insts[gen].call = Some(id.clone());
        self.calls
            .insert(id.clone(), CallRec::new((s, gen), t, probe));
        self.made(s, format!("call:{id}"), Ok(()), req)
    }

    /// One random action of user `s` (traffic phase only).
    pub fn act(&mut self, s: usize) {
        let now = Instant::now();
        self.slots[s].next = now + Duration::from_millis(self.rng.range(100, 600));
        if !self.cur_alive(s) {
            return;
        }
        let r = self.rng.below(100);
        let fault = self.fault_now();
        let gen = self.slots[s].insts.len() - 1;
        if r < 25 {
            if self.cur(s).unwrap().call.is_none() {
                if let Some(t) = self.pick_free(s) {
                    self.call(s, t, false);
                }
            }
        } else if r < 65 {
            let inflight = self.cur(s).unwrap().pending.keys();
            if inflight.filter(|k| k.starts_with("cmd:")).count() >= 8 {
                return;
            }
            let t = self.rng.below(self.slots.len() as u64) as usize;
            if t == s || !self.cur_alive(t) {
                return;
            }
            let inst = self.slots[s].insts.last_mut().unwrap();
            inst.cmd_seq += 1;
            let seq = inst.cmd_seq;
            let payload = format!("c {s}.{gen}.{seq}");
            let target = self.slots[t].name.clone();
            let req = self.req("cmd", Some(t), fault, seq as i32);
            match self.cur(s).unwrap().client.send_cmd(&target, payload) {
                Ok(task) => {
                    self.ledger.cmd_sent(s, gen, seq, t, &task);
                    self.made(s, format!("cmd:{task}"), Ok(()), req);
                }
                Err(c) => self.ledger.refused("cmd", c.get()),
            }
        } else if r < 75 {
            let v = 1 - self.cur(s).unwrap().dnd;
            self.set_dnd(s, v);
        } else if r < 80 {
            let inst = self.cur(s).unwrap();
            if inst
                .pending
                .keys()
                .filter(|k| k.starts_with("file:"))
                .count()
                >= 2
            {
                return;
            }
            let n = inst.files + 1;
            let t = self.rng.below(self.slots.len() as u64) as usize;
            if t == s || !self.cur_alive(t) {
                return;
            }
            let id = format!("f{s}.{gen}.{n}");
            let size = self.rng.range(1024, 8192) as usize;
            let mut data = format!("{id}\n").into_bytes();
            data.extend(crate::common::user::pattern(size));
            let path = self.slots[s].dir.join(format!("{id}.bin"));
            std::fs::write(&path, &data).unwrap();
            let target = self.slots[t].name.clone();
            let req = self.req("file", Some(t), fault, 0);
            let inst = self.slots[s].insts.last_mut().unwrap();
            inst.files = n;
            match inst.client.send_file(&target, path.to_str().unwrap()) {
                Ok(task) => {
                    self.ledger.file_sent(&task, &id);
                    self.made(s, format!("file:{task}"), Ok(()), req);
                }
                Err(c) => self.ledger.refused("file", c.get()),
            }
        }
    }

    pub fn set_dnd(&mut self, s: usize, v: i32) {
        let fault = self.fault_now();
        let req = self.req("dnd", None, fault, v);
        let n = self.ledger.next_cookie();
        let cookie = format!("dnd{n}");
        let r = self.cur(s).unwrap().client.set_dnd_status(v, &cookie);
        self.made(s, format!("dnd:{cookie}"), r, req);
    }

    pub fn get_statuses(&mut self, s: usize) {
        let req = self.req("status", None, "none", 0);
        let r = self.cur(s).unwrap().client.get_user_status("final");
        self.made(s, "get:final".into(), r, req);
    }

    /// Takes the answer to request `key` of client (s, g): false if there was none waiting
    /// (a result twice, or one never asked for).
    pub fn answered(&mut self, m: &Msg, key: String, code: i32) -> Option<Req> {
        let inst = &mut self.slots[m.slot].insts[m.gen];
        match inst.pending.remove(&key) {
            Some(req) => {
                self.ledger.answered(&req, m.at, code);
                if code != 0 {
                    self.ledger.errors.push(ErrRec {
                        slot: m.slot,
                        gen: m.gen,
                        node: inst.node,
                        kind: req.kind,
                        code,
                        at: m.at,
                        sent: req.at,
                        target: req.target,
                        key: key.clone(),
                    });
                }
                Some(req)
            }
            None => {
                self.ledger.fail(format!(
                    "{}#{}: a result nobody waited for ({key}, code {code})",
                    self.slots[m.slot].name, m.gen
                ));
                None
            }
        }
    }

    /// Fires what is due of [`Traffic::later`].
    pub fn fire_later(&mut self) {
        let now = Instant::now();
        let due: Vec<Later> = {
            let (due, rest): (Vec<_>, Vec<_>) = self.later.drain(..).partition(|(t, _)| *t <= now);
            self.later = rest;
            due.into_iter().map(|(_, l)| l).collect()
        };
        for l in due {
            match l {
                Later::Answer { slot, gen, call } => {
                    if !self.party_in(slot, gen, &call) {
                        continue;
                    }
                    let probe = self.calls.get(&call).is_some_and(|c| c.probe);
                    let fault = self.fault_now();
                    let client = &self.slots[slot].insts[gen].client;
                    if !probe && self.rng.pct(70) {
                        let r = client.accept_call(&call, "", "", "");
                        let req = self.req("accept", None, fault, 0);
                        self.made(slot, format!("accept:{call}"), r, req);
                    } else {
                        let r = client.reject_call(&call, "", "");
                        let req = self.req("reject", None, fault, 0);
                        self.made(slot, format!("reject:{call}"), r, req);
                    }
                }
                Later::Hangup { slot, gen, call } => {
                    if !self.party_in(slot, gen, &call) {
                        continue;
                    }
                    let fault = self.fault_now();
                    let r = self.slots[slot].insts[gen]
                        .client
                        .hungup_call(&call, "", "");
                    let req = self.req("hangup", None, fault, 0);
                    self.made(slot, format!("hangup:{call}"), r, req);
                }
            }
        }
    }

    /// Whether client (s, g) is the current one of its user, alive, and in `call`.
    fn party_in(&self, s: usize, g: usize, call: &str) -> bool {
        g + 1 == self.slots[s].insts.len()
            && self.slots[s].insts[g].alive()
            && self.slots[s].insts[g].call.as_deref() == Some(call)
    }

    /// Logs in the users due to.
    pub fn relogins(&mut self) {
        let now = Instant::now();
        for s in 0..self.slots.len() {
            if self.slots[s].relogin.is_some_and(|t| t <= now) {
                self.login(s);
            }
        }
    }

    /// Receives events for up to `wait`, handling each; then fires what is due.
    pub fn pump(&mut self, wait: Duration) {
        if let Ok(m) = self.rx.recv_timeout(wait) {
            self.handle(m);
            while let Ok(m) = self.rx.try_recv() {
                self.handle(m);
            }
        }
        self.follow_moves();
        self.fire_later();
        self.relogins();
    }

    /// Takes in where the drains moved sessions (read from Redis by the fault thread).
    fn follow_moves(&mut self) {
        let moves = std::mem::take(&mut *self.sh.moves.lock().unwrap());
        for (at, s, node) in moves {
            if let Some(inst) = self.slots[s].insts.last_mut() {
                if inst.since < at && inst.alive() {
                    inst.node = node;
                }
            }
        }
    }
}
