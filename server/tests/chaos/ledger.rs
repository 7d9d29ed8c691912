//! The chaos test's ledger: every request, result and delivery as it happened, and the checks
//! made once the faults are over: every accepted request got exactly one result; every cmd
//! acknowledged 0 was delivered exactly once and in order; every call ended once for each
//! party; the only losses are the allowed ones (the sessions of a node killed with -9 or frozen
//! past `node_timeout_ms`); and the figures (requests, failures by cause, waits per fault).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crvm_proto::UserStatus;

use super::rig::Done;
use super::schedule::Fault;
use super::traffic::{Req, Traffic};

/// A call as its parties saw it.
pub struct CallRec {
    pub caller: (usize, usize),
    pub callee: usize,
    pub callee_gen: Option<usize>,
    pub probe: bool,
    pub started: Instant,
    pub caller_ends: u32,
    pub callee_ends: u32,
    pub caller_notified: bool,
    pub callee_notified: bool,
    /// A party's session was lost while in it.
    pub lost: bool,
    /// The caller was rung by another call before this one was answered (its 601 is right).
    pub raced: bool,
    pub how: Vec<String>,
}

impl CallRec {
    pub fn new(caller: (usize, usize), callee: usize, probe: bool) -> CallRec {
        CallRec {
            caller,
            callee,
            callee_gen: None,
            probe,
            started: Instant::now(),
            caller_ends: 0,
            callee_ends: 0,
            caller_notified: false,
            callee_notified: false,
            lost: false,
            raced: false,
            how: Vec::new(),
        }
    }
}

/// A request answered with an error (judged once the run is over).
pub struct ErrRec {
    pub slot: usize,
    pub gen: usize,
    pub node: usize,
    pub kind: &'static str,
    pub code: i32,
    pub at: Instant,
    pub sent: Instant,
    pub target: Option<(usize, usize)>,
    pub key: String,
}

#[derive(Default)]
pub struct Ledger {
    failures: Vec<String>,
    requests: BTreeMap<&'static str, u64>,
    refused: BTreeMap<(&'static str, i32), u64>,
    results: BTreeMap<(&'static str, i32), u64>,
    counts: BTreeMap<&'static str, u64>,
    /// (fault under way when the request was made, request kind) → waits in ms.
    waits: BTreeMap<(&'static str, &'static str), Vec<u64>>,
    pub errors: Vec<ErrRec>,
    line_offs: Vec<(usize, usize, usize, i32, Instant)>,
    cmd_tasks: HashMap<String, (usize, usize, u64, usize)>,
    cmd_acked: Vec<(usize, usize, u64, usize)>,
    /// (receiver, sender, sender's client) → the sequence numbers received, in order.
    cmd_seen: HashMap<(usize, usize, usize), Vec<u64>>,
    file_tasks: HashMap<String, String>,
    files_ok: Vec<String>,
    files_seen: HashMap<String, u32>,
    /// Each subscriber's final list of statuses.
    pub truths: Vec<(usize, usize, Vec<UserStatus>)>,
    cookie: u64,
}

impl Ledger {
    pub fn fail(&mut self, what: String) {
        eprintln!("chaos: FAILURE {what}");
        self.failures.push(what);
    }

    pub fn requests(&mut self, kind: &'static str) {
        *self.requests.entry(kind).or_default() += 1;
    }

    pub fn refused(&mut self, kind: &'static str, code: i32) {
        *self.refused.entry((kind, code)).or_default() += 1;
    }

    pub fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    pub fn next_cookie(&mut self) -> u64 {
        self.cookie += 1;
        self.cookie
    }

    pub fn answered(&mut self, req: &Req, at: Instant, code: i32) {
        *self.results.entry((req.kind, code)).or_default() += 1;
        let ms = at.saturating_duration_since(req.at).as_millis() as u64;
        self.wait(req.fault, req.kind, ms);
    }

    pub fn wait(&mut self, fault: &'static str, kind: &'static str, ms: u64) {
        self.waits.entry((fault, kind)).or_default().push(ms);
    }

    pub fn line_off(&mut self, s: usize, g: usize, node: usize, code: i32, at: Instant) {
        self.line_offs.push((s, g, node, code, at));
    }

    pub fn cmd_sent(&mut self, s: usize, g: usize, seq: u64, target: usize, task: &str) {
        self.cmd_tasks.insert(task.to_owned(), (s, g, seq, target));
    }

    pub fn cmd_result(&mut self, task: &str, code: i32) {
        if code == 0 {
            if let Some(&c) = self.cmd_tasks.get(task) {
                self.cmd_acked.push(c);
            }
        }
    }

    pub fn cmd_delivered(&mut self, receiver: usize, text: &str) {
        let parsed = text.strip_prefix("c ").and_then(|r| {
            let mut it = r.split('.').map(|x| x.parse::<u64>().ok());
            Some((it.next()??, it.next()??, it.next()??))
        });
        match parsed {
            Some((s, g, seq)) => self
                .cmd_seen
                .entry((receiver, s as usize, g as usize))
                .or_default()
                .push(seq),
            None => self.fail(format!("u{receiver}: a cmd no one sent: {text:?}")),
        }
    }

    pub fn file_sent(&mut self, task: &str, id: &str) {
        self.file_tasks.insert(task.to_owned(), id.to_owned());
    }

    pub fn file_result(&mut self, task: &str, code: i32) {
        if code == 0 {
            if let Some(id) = self.file_tasks.get(task) {
                self.files_ok.push(id.clone());
            }
        }
    }

    pub fn file_delivered(&mut self, id: &str) {
        *self.files_seen.entry(id.to_owned()).or_default() += 1;
    }

    pub fn truth_of(&mut self, s: usize, g: usize, list: &[UserStatus]) {
        self.truths.push((s, g, list.to_vec()));
    }
}

/// What the faults allow.
pub struct Allow<'a> {
    pub done: &'a [Done],
    pub timeout_ms: u64,
    /// How long a session of a lost node may take to be told (its resume window and more).
    pub grace: Duration,
}

impl Allow<'_> {
    /// Whether node `node`'s sessions may have been lost around `t`: it was killed with -9 or
    /// frozen past the node timeout. (A rolling restart loses nothing: drain moves sessions.)
    pub fn node_lost(&self, node: usize, t: Instant) -> Option<&'static str> {
        self.done.iter().find_map(|d| {
            let lossy = match d.fault {
                Fault::Kill { node: n, .. } => n == node,
                Fault::Freeze { node: n, ms } => n == node && ms >= self.timeout_ms,
                _ => false,
            };
            let from = d
                .start
                .checked_sub(Duration::from_secs(1))
                .unwrap_or(d.start);
            (lossy && t >= from && t <= d.end + self.grace).then(|| d.fault.kind(self.timeout_ms))
        })
    }

    /// Whether a fault of kind `kind` was under way at `t`, or ended less than `after` before.
    pub fn during(&self, kind: &str, t: Instant, after: Duration) -> bool {
        self.done
            .iter()
            .any(|d| d.fault.kind(self.timeout_ms) == kind && t >= d.start && t <= d.end + after)
    }

    /// Whether the node links were cut around `t`.
    pub fn links_cut(&self, t: Instant) -> bool {
        self.done.iter().any(|d| {
            d.fault == Fault::LinksCut
                && t + Duration::from_millis(500) >= d.start
                && t <= d.end + Duration::from_secs(3)
        })
    }
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// The story of the last call user `s` was in before `at`, for a failure's report.
fn last_call_of(t: &Traffic, s: usize, at: Instant) -> String {
    let last = t
        .calls
        .iter()
        .filter(|(_, c)| (c.caller.0 == s || c.callee == s) && c.started < at)
        .max_by_key(|(_, c)| c.started);
    match last {
        Some((id, c)) => format!("; its last call {id}:\n    {}", c.how.join("\n    ")),
        None => String::new(),
    }
}

/// Checks the run and prints its figures; the failures found.
pub fn check(t: &mut Traffic, a: &Allow<'_>) -> Vec<String> {
    let mut allowed: BTreeMap<String, u64> = BTreeMap::new();
    let mut bad: Vec<String> = std::mem::take(&mut t.ledger.failures);
    let name = |s: usize| format!("u{s}");
    // Sessions lost: only those of a lost node.
    let mut lost_ok: HashMap<(usize, usize), bool> = HashMap::new();
    for &(s, g, node, code, at) in &t.ledger.line_offs {
        match a.node_lost(node, at) {
            Some(kind) if code == 207 => {
                *allowed
                    .entry(format!("line_off 207 ({kind} of its node)"))
                    .or_default() += 1;
                lost_ok.insert((s, g), true);
            }
            _ => {
                bad.push(format!(
                    "{}#{g}: line_off({code}) at n{}",
                    name(s),
                    node + 1
                ));
                lost_ok.insert((s, g), false);
            }
        }
    }
    // Every request got its result: none left waiting at a client that lives.
    for (s, slot) in t.slots.iter().enumerate() {
        for (g, inst) in slot.insts.iter().enumerate() {
            for (key, req) in &inst.pending {
                if lost_ok.get(&(s, g)) == Some(&true) {
                    *allowed
                        .entry(format!("{} lost with its session", req.kind))
                        .or_default() += 1;
                } else if inst.ended.is_some_and(|(c, _)| c != 0) && req.kind == "login" {
                    // A refused login already had its result.
                } else {
                    bad.push(format!("{}#{g}: no result for {key}", name(s)));
                }
            }
        }
    }
    // Errors: each allowed by a fault, or a failure.
    for e in &t.ledger.errors {
        let near = a.node_lost(e.node, e.sent).or_else(|| {
            e.target
                .and_then(|(_, n)| a.node_lost(n, e.sent).or_else(|| a.node_lost(n, e.at)))
        });
        let call = e.key.split_once(':').map(|(_, c)| c).unwrap_or("");
        let rec = t.calls.get(call);
        let why: Option<String> = match (e.kind, e.code) {
            (_, 8) => None,
            (_, c) if lost_ok.get(&(e.slot, e.gen)) == Some(&true) => {
                Some(format!("{c}: its session lost with its node"))
            }
            ("call", 601) if rec.is_some_and(|c| c.raced) => {
                Some("601: rung by another call meanwhile".into())
            }
            ("call", 602) => Some("602: the callee busy (the model's race)".into()),
            ("accept" | "reject" | "hangup", 600)
                if rec.is_some_and(|c| c.caller_notified || c.callee_notified || c.lost) =>
            {
                Some("600: the call had just ended".into())
            }
            ("cmd" | "file", 1102) if a.links_cut(e.at) => Some("1102: node links cut".into()),
            // A drain ends the transfers its relay runs (docs/CLUSTER.md "Drain and rolling
            // restarts", step 4): once, with 1102 for the sender.
            ("file", 1102) if a.during("rolling", e.at, Duration::from_secs(1)) => {
                Some("1102: a transfer run by a draining node's relay".into())
            }
            _ => near.map(|k| format!("{}: a party's node lost ({k})", e.code)),
        };
        match why {
            Some(w) => *allowed.entry(format!("{} {w}", e.kind)).or_default() += 1,
            None => bad.push(format!(
                "{}#{}: {} answered {} ({}; at n{}, sent at {} ms, answered at {} ms; target {:?}){}",
                name(e.slot),
                e.gen,
                e.kind,
                e.code,
                e.key,
                e.node + 1,
                e.sent.duration_since(t.t0).as_millis(),
                e.at.duration_since(t.t0).as_millis(),
                e.target.map(|(s, n)| format!("u{s} at n{}", n + 1)),
                last_call_of(t, e.slot, e.sent),
            )),
        }
    }
    // Calls: each ended exactly once for each live party.
    for (id, c) in &t.calls {
        let caller_lost = lost_ok.contains_key(&c.caller);
        let callee_lost = c
            .callee_gen
            .is_some_and(|g| lost_ok.contains_key(&(c.callee, g)));
        let ok_caller = c.caller_ends == 1 || (caller_lost && c.caller_ends == 0);
        let ok_callee = match c.callee_gen {
            Some(_) => c.callee_ends == 1 || (callee_lost && c.callee_ends == 0),
            None => c.callee_ends == 0,
        };
        if !ok_caller || !ok_callee {
            bad.push(format!(
                "call {id} u{}→u{}: ended {}× for the caller, {}× for the callee: {:?}",
                c.caller.0, c.callee, c.caller_ends, c.callee_ends, c.how
            ));
        }
    }
    // Cmds acknowledged 0: delivered exactly once, and in order.
    let l = &t.ledger;
    for (&(r, s, g), seqs) in &l.cmd_seen {
        if seqs.windows(2).any(|w| w[0] >= w[1]) {
            bad.push(format!(
                "u{r}: cmds of u{s}#{g} out of order or doubled: {seqs:?}"
            ));
        }
    }
    for &(s, g, seq, r) in &l.cmd_acked {
        let n = l
            .cmd_seen
            .get(&(r, s, g))
            .map_or(0, |v| v.iter().filter(|&&x| x == seq).count());
        if n != 1 {
            bad.push(format!(
                "cmd u{s}#{g}.{seq} → u{r} acknowledged, delivered {n}×"
            ));
        }
    }
    for id in &l.files_ok {
        let n = l.files_seen.get(id).copied().unwrap_or(0);
        if n != 1 {
            bad.push(format!("file {id} sent, delivered {n}×"));
        }
    }
    for (id, n) in &l.files_seen {
        if *n > 1 {
            bad.push(format!("file {id} delivered {n}×"));
        }
    }
    print_figures(l, &allowed, &bad);
    bad
}

fn print_figures(l: &Ledger, allowed: &BTreeMap<String, u64>, bad: &[String]) {
    println!("chaos: requests by kind: {:?}", l.requests);
    println!("chaos: results by (kind, code): {:?}", l.results);
    if !l.refused.is_empty() {
        println!("chaos: refused at once: {:?}", l.refused);
    }
    println!("chaos: events: {:?}", l.counts);
    println!(
        "chaos: cmds acknowledged {}, files delivered {}",
        l.cmd_acked.len(),
        l.files_ok.len()
    );
    println!("chaos: allowed losses and errors by cause:");
    for (k, n) in allowed {
        println!("chaos:   {n:>5}  {k}");
    }
    let mut by_cause: BTreeMap<String, u64> = BTreeMap::new();
    for b in bad {
        let cause: String = b.split(": ").nth(1).unwrap_or(b).chars().take(40).collect();
        *by_cause.entry(cause).or_default() += 1;
    }
    println!("chaos: failures by cause: {by_cause:?}");
    println!("chaos: waits (ms) by the fault under way when the request was made:");
    println!(
        "chaos:   {:<14} {:>6} {:>6} {:>6} {:>6}",
        "fault", "n", "p50", "p99", "max"
    );
    let mut by_fault: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut resume: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for ((f, k), v) in &l.waits {
        let into = if *k == "resume" {
            &mut resume
        } else {
            &mut by_fault
        };
        into.entry(f).or_default().extend(v);
    }
    for (f, v) in by_fault.iter_mut() {
        let max = v.iter().copied().max().unwrap_or(0);
        let (p50, p99) = (pct(v, 0.5), pct(v, 0.99));
        println!("chaos:   {f:<14} {:>6} {p50:>6} {p99:>6} {max:>6}", v.len());
    }
    for (f, v) in resume.iter_mut() {
        let (p50, p99) = (pct(v, 0.5), pct(v, 0.99));
        println!(
            "chaos:   resumes during {f}: {} (offline p50 {p50} ms, p99 {p99} ms)",
            v.len()
        );
    }
}
