//! A real library client for the tests (`crvm::core::Client`), its events on a channel.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use crvm::core::{Client, Event, LoginParams};

use super::Server;

/// Longest wait for one event.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct User {
    pub c: Client,
    pub rx: Receiver<Event>,
}

impl User {
    /// Logs `name` of the `demo` tenant in on `s`, files arriving in `dir`.
    pub fn login(s: &Server, name: &str, dir: &Path) -> User {
        User::login_with(s, name, dir, &[])
    }

    /// [`User::login`] with options set first.
    pub fn login_with(s: &Server, name: &str, dir: &Path, options: &[(&str, &str)]) -> User {
        User::login_at(s.addr, name, dir, options)
    }

    /// [`User::login_with`] through `addr` (a server, or a proxy or link emulator before one).
    pub fn login_at(addr: SocketAddr, name: &str, dir: &Path, options: &[(&str, &str)]) -> User {
        let (tx, rx): (Sender<Event>, Receiver<Event>) = crossbeam_channel::unbounded();
        let c = Client::new(
            &addr.to_string(),
            Box::new(move |e: &Event| {
                let _ = tx.send(e.clone());
            }),
        )
        .unwrap();
        c.set_option("download_dir", dir.to_str().unwrap()).unwrap();
        for (k, v) in options {
            c.set_option(k, v).unwrap();
        }
        c.login(&LoginParams {
            auth_acnt: "demo",
            auth_pswd: "demo-secret",
            priv_acnt: name,
            ..Default::default()
        })
        .unwrap();
        let u = User { c, rx };
        let e = u.next();
        assert!(
            matches!(e, Event::Login { result: Ok(_), .. }),
            "{name}: {e:?}"
        );
        u
    }

    pub fn next(&self) -> Event {
        self.next_within(WAIT)
    }

    /// The next event, waiting at most `wait` for it.
    pub fn next_within(&self, wait: Duration) -> Event {
        self.rx.recv_timeout(wait).expect("an event in time")
    }

    /// Events up to and including the first that `stop` accepts.
    pub fn until(&self, stop: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut v = Vec::new();
        loop {
            let e = self.next();
            let done = stop(&e);
            v.push(e);
            if done {
                return v;
            }
        }
    }
}

/// `n` bytes of a fixed pattern.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}
