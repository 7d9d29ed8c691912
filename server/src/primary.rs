//! Where a cluster's Redis primary is (docs/CLUSTER.md): one address in the
//! config (`redis`), or the primary that Redis Sentinel names (`sentinels`, `sentinel_master`),
//! asked again whenever the primary stops answering as one (after a failover).

use std::time::Duration;

use crate::config::Cluster;

/// How long one sentinel gets to answer.
const SENTINEL_PATIENCE: Duration = Duration::from_millis(500);

/// The configured way to the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Primary {
    /// A fixed URL.
    Url(String),
    /// Ask these sentinels, in order, for the address of `master`.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

impl Primary {
    pub fn of(c: &Cluster) -> Primary {
        match &c.sentinel_master {
            Some(master) if !c.sentinels.is_empty() => Primary::Sentinel {
                sentinels: c.sentinels.clone(),
                master: master.clone(),
            },
            _ => Primary::Url(c.redis.clone()),
        }
    }

    /// Whether asking again may find another primary.
    pub fn follows_failovers(&self) -> bool {
        matches!(self, Primary::Sentinel { .. })
    }

    /// How the log names it.
    pub fn describe(&self) -> String {
        match self {
            Primary::Url(url) => url.clone(),
            Primary::Sentinel { sentinels, master } => {
                format!("{master:?} of sentinels {}", sentinels.join(", "))
            }
        }
    }

    /// A client of the primary as it is now.
    pub async fn client(&self) -> Result<redis::Client, String> {
        match self {
            Primary::Url(url) => redis::Client::open(url.as_str()).map_err(|e| e.to_string()),
            Primary::Sentinel { sentinels, master } => {
                let mut last = String::from("no sentinel answered");
                for s in sentinels {
                    match ask_async(s, master).await {
                        Ok(addr) => return open(&addr),
                        Err(e) => last = format!("sentinel {s}: {e}"),
                    }
                }
                Err(last)
            }
        }
    }

    /// [`Primary::client`], blocking (for the meetings store).
    pub fn client_blocking(&self) -> Result<redis::Client, String> {
        match self {
            Primary::Url(url) => redis::Client::open(url.as_str()).map_err(|e| e.to_string()),
            Primary::Sentinel { sentinels, master } => {
                let mut last = String::from("no sentinel answered");
                for s in sentinels {
                    match ask_blocking(s, master) {
                        Ok(addr) => return open(&addr),
                        Err(e) => last = format!("sentinel {s}: {e}"),
                    }
                }
                Err(last)
            }
        }
    }
}

fn open(addr: &str) -> Result<redis::Client, String> {
    redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())
}

fn ask_cmd(master: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SENTINEL");
    cmd.arg("get-master-addr-by-name").arg(master);
    cmd
}

fn addr_of(reply: Option<(String, String)>, master: &str) -> Result<String, String> {
    match reply {
        Some((host, port)) => Ok(format!("{host}:{port}")),
        None => Err(format!("knows no primary {master:?}")),
    }
}

async fn ask_async(sentinel: &str, master: &str) -> Result<String, String> {
    let client = open(sentinel)?;
    let ask = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        ask_cmd(master)
            .query_async::<Option<(String, String)>>(&mut conn)
            .await
    };
    match tokio::time::timeout(SENTINEL_PATIENCE, ask).await {
        Ok(Ok(reply)) => addr_of(reply, master),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer".into()),
    }
}

fn ask_blocking(sentinel: &str, master: &str) -> Result<String, String> {
    let client = open(sentinel)?;
    let mut conn = client
        .get_connection_with_timeout(SENTINEL_PATIENCE)
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(SENTINEL_PATIENCE))
        .map_err(|e| e.to_string())?;
    let reply = ask_cmd(master)
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    addr_of(reply, master)
}
