//! A moving session's state as it travels from its old node to its new one over the node link
//! (JSON): who it is, its resume secrets, what it holds for its client (numbered frames not
//! acknowledged, frames queued) and the cmds coming in to it.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::LoginGen;
use crate::link::moving::InFlight;
use crate::outbox::{Moving, Out};

/// A frame held for the client (see [`Out`]).
#[derive(Debug, Serialize, Deserialize)]
pub enum Frame {
    Control(Vec<u8>),
    Attached(Vec<u8>, Vec<u8>),
    Data(Vec<u8>),
    Ping,
    Pong,
    Ack,
}

impl From<&Out> for Frame {
    fn from(out: &Out) -> Frame {
        match out {
            Out::Control(json) => Frame::Control(json.to_vec()),
            Out::Attached(json, att) => Frame::Attached(json.to_vec(), att.to_vec()),
            Out::Data(p) => Frame::Data(p.to_vec()),
            Out::Ping => Frame::Ping,
            Out::Pong => Frame::Pong,
            Out::Ack => Frame::Ack,
        }
    }
}

impl From<Frame> for Out {
    fn from(f: Frame) -> Out {
        match f {
            Frame::Control(json) => Out::Control(json.into()),
            Frame::Attached(json, att) => Out::Attached(json.into(), Arc::new(att)),
            Frame::Data(p) => Out::Data(Arc::new(p)),
            Frame::Ping => Out::Ping,
            Frame::Pong => Out::Pong,
            Frame::Ack => Out::Ack,
        }
    }
}

/// A cmd coming in to the session, its sender named by gen and node.
#[derive(Debug, Serialize, Deserialize)]
pub struct CmdState {
    pub sender: LoginGen,
    pub node: String,
    pub n: u64,
    pub len: usize,
    /// Still waiting for room: its sender's user and its bytes.
    pub waiting: Option<(String, Vec<u8>)>,
}

/// Everything a session takes along.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionState {
    pub id: String,
    pub tenant: String,
    pub secret: String,
    pub prev_secret: Option<String>,
    pub user_id: String,
    pub gen: LoginGen,
    pub login_conn: u64,
    pub addr: SocketAddr,
    pub reconnecting: bool,
    /// The sequence number of the next frame to the client.
    pub next: u64,
    /// The last numbered frame handled from the client.
    pub handled: u64,
    pub kept: Vec<(u64, Frame)>,
    pub queued: Vec<Frame>,
    /// The number of the next `cmd_in`, and the cmds coming in (delivered, then waiting).
    pub next_n: u64,
    pub cmds: Vec<CmdState>,
    /// What it sent and has not heard the end of, by node.
    pub in_flight: InFlight,
}

impl SessionState {
    /// The outbox part.
    pub fn set_outbox(&mut self, m: Moving) {
        self.next = m.next;
        self.handled = m.handled;
        self.kept = m.kept.iter().map(|(s, o)| (*s, Frame::from(o))).collect();
        self.queued = m.queued.iter().map(Frame::from).collect();
    }

    /// Takes the outbox part out.
    pub fn take_outbox(&mut self) -> Moving {
        Moving {
            next: self.next,
            handled: self.handled,
            kept: std::mem::take(&mut self.kept)
                .into_iter()
                .map(|(s, f)| (s, f.into()))
                .collect(),
            queued: std::mem::take(&mut self.queued)
                .into_iter()
                .map(Into::into)
                .collect(),
        }
    }
}
