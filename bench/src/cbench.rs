//! (j) acked cmd throughput with C clients on both sides: `bench/c/cmd_throughput.c` (embedded
//! here, built with `cc -O2` in the run's temp dir against the `libcrvm.so` beside this
//! executable and Debian's `libnats-dev`), S sender connections → 1 receiver, libcrvm's C API
//! against libnats. Each role is a process of its own, driven by lines like the peers (see the
//! program's header comment); the crvm-server is this section's own, the nats-server the run's.

use crate::anchors::{installed, Nats};
use crate::procs::{start_server, Peer, Stats};
use crate::{ab, bytes_label, loadavg, median, skipped, Cfg, Res, CMD_SIZES, MIB, PENDING_BUDGET};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const SOURCE: &str = include_str!("../c/cmd_throughput.c");
const HEADER: &str = include_str!("../../include/crvm.h");
/// Sender connections of the rows: the 4, and (c)'s 8.
const SENDER_COUNTS: [usize; 2] = [4, 8];
/// libcrvm's soname (the root build.rs sets it from the major version, the bench's too).
const SONAME: &str = concat!("libcrvm.so.", env!("CARGO_PKG_VERSION_MAJOR"));
const NATS_SUBJECT: &str = "bench.cmd";
const CRVM_RECEIVER: &str = "crx";

/// Builds the C program in `dir`. `Ok(Err(what))` when a prerequisite is not installed.
fn build(dir: &Path) -> Res<Result<PathBuf, &'static str>> {
    let Some(lib) = libcrvm()? else {
        return Ok(Err("libcrvm.so (cargo build -p crvm)"));
    };
    if !installed("cc") {
        return Ok(Err("cc"));
    }
    let mut probe = Command::new("cc")
        .args(["-E", "-x", "c", "-", "-o", "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    probe
        .stdin
        .take()
        .expect("piped")
        .write_all(b"#include <nats/nats.h>\n")?;
    if !probe.wait()?.success() {
        return Ok(Err("libnats (libnats-dev)"));
    }
    std::fs::create_dir_all(dir)?;
    // A copy under its soname (the name the program will ask for), linked and found at run
    // time through this directory.
    std::fs::copy(&lib, dir.join(SONAME))?;
    std::os::unix::fs::symlink(SONAME, dir.join("libcrvm.so"))?;
    let src = dir.join("cmd_throughput.c");
    std::fs::write(&src, SOURCE)?;
    std::fs::write(dir.join("crvm.h"), HEADER)?;
    let prog = dir.join("cmd_throughput");
    let out = Command::new("cc")
        .args(["-O2", "-std=c11", "-Wall", "-Wextra", "-o"])
        .arg(&prog)
        .arg(&src)
        .arg("-I")
        .arg(dir)
        .arg("-L")
        .arg(dir)
        .args(["-lcrvm", "-lnats", "-lpthread"])
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "building cmd_throughput.c failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(Ok(prog))
}

/// The libcrvm.so of crvm-bench's own build: cargo builds the cdylib with the bench but puts it
/// in `deps/` only, unless the `crvm` package itself was built, which copies it up beside the
/// executables; the newer of the two.
fn libcrvm() -> Res<Option<PathBuf>> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("crvm-bench has no directory")?;
    let mut newest = None;
    for lib in [dir.join("libcrvm.so"), dir.join("deps/libcrvm.so")] {
        let Ok(modified) = std::fs::metadata(&lib).and_then(|m| m.modified()) else {
            continue;
        };
        match &newest {
            Some((t, _)) if *t >= modified => {}
            _ => newest = Some((modified, lib)),
        }
    }
    Ok(newest.map(|(_, lib)| lib))
}

/// One system's three processes: its server, the receiver, the senders.
struct Side<'a> {
    server_pid: u32,
    rx: &'a mut Peer,
    tx: &'a mut Peer,
    /// Messages the receiver must have had so far.
    expected: &'a mut u64,
    senders: usize,
    /// CPU seconds of (server, senders, receiver) over the timed rounds.
    cpu: [f64; 3],
}

impl Side<'_> {
    fn cpu_now(&self) -> Res<[f64; 3]> {
        Ok([
            crate::procs::cpu_secs(self.server_pid)?,
            self.tx.proc.cpu_secs()?,
            self.rx.proc.cpu_secs()?,
        ])
    }

    /// One round: every sender sends `n` messages of `size` bytes; acked messages per second.
    /// The receiver's count must match: nothing lost, nothing extra.
    fn round(&mut self, n: u64, size: usize, timed: bool) -> Res<f64> {
        let before = self.cpu_now()?;
        self.tx.send(&format!("go {n} {size}"))?;
        let ns: f64 = self.tx.expect("took", Duration::from_secs(600))?.parse()?;
        if timed {
            let after = self.cpu_now()?;
            for k in 0..3 {
                self.cpu[k] += after[k] - before[k];
            }
        }
        *self.expected += self.senders as u64 * n;
        self.rx.send("count")?;
        let got: u64 = self.rx.expect("count", Duration::from_secs(30))?.parse()?;
        if got != *self.expected {
            return Err(format!(
                "{}: received {got} messages, expected {}",
                self.rx.user, self.expected
            )
            .into());
        }
        Ok((self.senders as u64 * n) as f64 / (ns / 1e9))
    }
}

pub fn section_j(cfg: &Cfg, tmp: &Path, nats: Option<&Nats>) -> Res<()> {
    println!(
        "(j) acked cmd throughput, C clients: S sender connections → 1 receiver, libcrvm's C API \
         (send_cmd → send_cmd_rlst; the receiver counts notify_cmd_data) vs libnats (publish \
         with a reply inbox; the receiver's handler replies empty, the sender counts replies); \
         each sender keeps at most 2048 messages / 4 MiB unacknowledged (crvm's cmd window) on \
         both sides; senders, receiver and each server are processes of their own. Median \
         msgs/s over {} alternating rounds after a warm-up (target ratio >= 1.0); load average \
         at the start {}",
        cfg.reps,
        loadavg()
    );
    let dir = tmp.join("cbench");
    let prog = match build(&dir)? {
        Ok(prog) => prog,
        Err(missing) if cfg.quick => {
            skipped(missing);
            return Ok(());
        }
        Err(missing) => {
            return Err(format!(
                "{missing} is not installed: run scripts/bench.sh, which installs the anchors"
            )
            .into())
        }
    };
    // Only --quick gets here without NATS (a full run fails at the start).
    let Some(nats) = nats else {
        skipped("nats-server");
        return Ok(());
    };
    let server = start_server(&cfg.server, &dir.join("server"), MIB, "")?;
    let crvm_addr = server.addr.to_string();
    let drive = |args: &[&str], name: &str| -> Res<Peer> {
        let mut cmd = Command::new(&prog);
        cmd.args(args);
        Peer::command(cmd, name)
    };
    let mut rx_crvm = drive(&["recv", "crvm", &crvm_addr, CRVM_RECEIVER], "c-recv-crvm")?;
    let mut rx_nats = drive(&["recv", "nats", &nats.url, NATS_SUBJECT], "c-recv-nats")?;
    let (mut expected_crvm, mut expected_nats) = (0, 0);
    let n_of = |size: usize| cfg.per_sender.min(PENDING_BUDGET / size as u64);
    println!("      S  size           N   crvm msgs/s   NATS msgs/s   ratio   crvm MB/s");
    let mut cpu_rows = Vec::new();
    for senders in SENDER_COUNTS {
        let count = senders.to_string();
        let mut tx_crvm = drive(
            &["send", "crvm", &crvm_addr, CRVM_RECEIVER, &count],
            "c-send-crvm",
        )?;
        let mut tx_nats = drive(
            &["send", "nats", &nats.url, NATS_SUBJECT, &count],
            "c-send-nats",
        )?;
        for size in CMD_SIZES {
            let n = n_of(size);
            let mut crvm = Side {
                server_pid: server.proc.pid(),
                rx: &mut rx_crvm,
                tx: &mut tx_crvm,
                expected: &mut expected_crvm,
                senders,
                cpu: [0.0; 3],
            };
            let mut anchor = Side {
                server_pid: nats.proc.pid(),
                rx: &mut rx_nats,
                tx: &mut tx_nats,
                expected: &mut expected_nats,
                senders,
                cpu: [0.0; 3],
            };
            // Untimed: connections, buffers and the servers' queues at this size warm.
            crvm.round(n.div_ceil(10), size, false)?;
            anchor.round(n.div_ceil(10), size, false)?;
            let (mut c, mut a) = (Vec::new(), Vec::new());
            for round in 0..cfg.reps {
                let (x, y) = ab(
                    round,
                    || crvm.round(n, size, true),
                    || anchor.round(n, size, true),
                )?;
                c.push(x);
                a.push(y);
            }
            let (c, a) = (median(c), median(a));
            println!(
                "    {senders:>3}  {:<9} {n:>6} {c:>13.0} {a:>13.0} {:>7.2} {:>11.1}",
                bytes_label(size),
                c / a,
                c * size as f64 / 1e6
            );
            let msgs = (cfg.reps as u64 * senders as u64 * n) as f64;
            let per_msg = |cpu: [f64; 3]| cpu.map(|secs| secs * 1e6 / msgs);
            cpu_rows.push((senders, size, per_msg(crvm.cpu), per_msg(anchor.cpu)));
        }
    }
    println!(
        "    CPU µs per message over the timed rounds: server + senders' process + receiver's \
         process"
    );
    println!("      S  size        crvm: server  send  recv    NATS: server  send  recv");
    for (senders, size, c, a) in cpu_rows {
        println!(
            "    {senders:>3}  {:<9} {:>13.2} {:>5.2} {:>5.2} {:>15.2} {:>5.2} {:>5.2}",
            bytes_label(size),
            c[0],
            c[1],
            c[2],
            a[0],
            a[1],
            a[2]
        );
    }
    println!("    load average at the end of (j): {}", loadavg());
    Ok(())
}
