//! A real S3-compatible object store for the replica tests: one Garage
//! node (crates.io `garage`; `scripts/test` builds it once per machine) on free loopback ports,
//! with a temporary data directory, a key and a bucket.
//!
//! Each server runs under a small shell watchdog that kills it and removes
//! its directory when the test process is gone, so that a server shared by
//! a whole test binary (a `static`, never dropped) does not outlive it.
//! Without `garage` the tests fail, saying what is missing and how to get it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Garage {
    pub dir: PathBuf,
    cfg: PathBuf,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
    pub bucket: String,
    s3_port: u16,
    rpc_port: u16,
    /// The watchdog shells (each ends soon after its server).
    watchdogs: std::sync::Mutex<Vec<std::process::Child>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where `scripts/test` builds Garage when no `garage` is installed: a cache
/// outside the clone, shared by every clone on the machine.
fn cached_garage() -> Option<PathBuf> {
    let cache = std::env::var_os("PAGELOG_CACHE").map(PathBuf::from).or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(|c| PathBuf::from(c).join("pagelog"))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/pagelog")))
    })?;
    Some(cache.join("garage-2.5.0/bin/garage"))
}

/// The `garage` binary: on PATH, in ~/.cargo/bin, or in scripts/test's cache.
pub fn garage_bin() -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("garage")).find(|f| f.is_file()))
        .unwrap_or_default();
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/garage"));
    found.or_else(|| home.filter(|h| h.is_file())).or_else(|| cached_garage().filter(|c| c.is_file())).unwrap_or_else(
        || {
            panic!(
                "MISSING PREREQUISITE: the replica tests need a real Garage S3 server, and no `garage` binary \
             is on PATH, in ~/.cargo/bin or in {cache}. Run the tests with `scripts/test`, which builds \
             Garage 2.5.0 there once per machine (30-50 min on 2 cores), or install it yourself with \
             `cargo install garage --version 2.5.0 --locked --no-default-features --features bundled-libs,sqlite`",
                cache = cached_garage().map(|c| c.display().to_string()).unwrap_or_else(|| "~/.cache/pagelog".into())
            )
        },
    )
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

impl Garage {
    /// Starts a node, assigns its layout, creates key `k` and bucket `bkt`.
    pub fn start(name: &str) -> Garage {
        let secret: String = (0..32).map(|i| format!("{:02x}", (i * 37 + std::process::id() as usize) % 251)).collect();
        let mut g = Garage::node(name, &secret, 1);
        g.wait_cli(|c| c.arg("status"));
        let id = g.node_id();
        g.wait_cli(|c| c.args(["layout", "assign", "-z", "dc1", "-c", "1G", &id]));
        run(g.cli().args(["layout", "apply", "--version", "1"]));
        g.make_key_and_bucket();
        g.wait_s3();
        g
    }

    /// A node's configuration and server (not yet in a layout), listening.
    /// Its ports are found free by binding port 0 and letting go, so another
    /// process can take one before the server binds it (seen once in CI: the
    /// server exited and every CLI call was refused for 30 s); a server that
    /// exits before its RPC port opens is started again on fresh ports.
    fn node(name: &str, secret: &str, replication_factor: u32) -> Garage {
        const TRIES: usize = 5;
        for attempt in 1..=TRIES {
            let g = Garage::node_once(name, secret, replication_factor);
            match g.await_listening() {
                Ok(()) => return g,
                Err(why) if attempt < TRIES => {
                    eprintln!("garage node {name}: {why}; starting it again on other ports");
                    g.kill();
                }
                Err(why) => panic!("garage node {name}: {why} ({TRIES} tries)\n{}", g.server_log()),
            }
        }
        unreachable!("the last try returns or panics")
    }

    /// Waits until the server says in its log that its RPC, S3 and admin
    /// servers listen; Err when one of them could not bind (Garage then
    /// logs the error and runs on without it, and a connection to that port
    /// would reach whoever holds it), when the server exited, or after 30 s.
    fn await_listening(&self) -> Result<(), String> {
        let t0 = Instant::now();
        loop {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            if log.contains("exited with error") || log.contains("Address already in use") {
                return Err("a port was taken before the server bound it".into());
            }
            if ["Listening on", "S3 API server listening", "Admin API server listening"].iter().all(|l| log.contains(l))
            {
                return Ok(());
            }
            let alive = self.pid().is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                return Err("the server exited before it listened".into());
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Err("the server did not listen within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines the server wrote, for failure messages.
    pub fn server_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "server.log ({}), last lines:\n{}",
            self.dir.display(),
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }

    fn node_once(name: &str, secret: &str, replication_factor: u32) -> Garage {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join("pagelog-garage").join(format!(
            "{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let cfg = dir.join("garage.toml");
        std::fs::write(
            &cfg,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = {replication_factor}\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\n[admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let g = Garage {
            dir,
            cfg,
            endpoint: format!("http://127.0.0.1:{s3}"),
            key_id: String::new(),
            secret: String::new(),
            bucket: "bkt".into(),
            s3_port: s3,
            rpc_port: rpc,
            watchdogs: Default::default(),
        };
        g.spawn();
        g
    }

    fn node_id(&self) -> String {
        let id = self.wait_cli(|c| c.args(["node", "id", "-q"]));
        id.trim().split('@').next().unwrap().to_string()
    }

    fn make_key_and_bucket(&mut self) {
        let key = self.wait_cli(|c| c.args(["key", "create", "k"]));
        let field = |label: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim_start_matches(':').trim().to_string()))
                .unwrap_or_else(|| panic!("no {label:?} in `garage key create` output:\n{key}"))
        };
        self.key_id = field("Key ID");
        self.secret = field("Secret key");
        self.wait_cli(|c| c.args(["bucket", "create", "bkt"]));
        self.wait_cli(|c| c.args(["bucket", "allow", "--read", "--write", "--owner", "bkt", "--key", "k"]));
    }

    /// The S3 API's `host:port`.
    pub fn s3_addr(&self) -> String {
        format!("127.0.0.1:{}", self.s3_port)
    }

    pub fn cli(&self) -> Command {
        let mut c = Command::new(garage_bin());
        c.arg("-c").arg(&self.cfg);
        c
    }

    /// Retries a CLI command while the node starts.
    pub fn wait_cli(&self, f: impl Fn(&mut Command) -> &mut Command) -> String {
        let t0 = Instant::now();
        loop {
            let mut c = self.cli();
            let out = f(&mut c).output().unwrap();
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            }
            if t0.elapsed() > Duration::from_secs(30) {
                panic!(
                    "{c:?}: {}{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    self.server_log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_s3(&self) {
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(30), "garage's S3 port never opened");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the server process (under the watchdog).
    fn spawn(&self) {
        let script = format!(
            "'{bin}' -c '{cfg}' server >>'{dir}/server.log' 2>&1 & g=$!; echo $g > '{dir}/pid'; \
             while kill -0 {me} 2>/dev/null && kill -0 $g 2>/dev/null; do sleep 0.3; done; \
             kill -9 $g 2>/dev/null; if ! kill -0 {me} 2>/dev/null; then rm -rf '{dir}'; fi",
            bin = garage_bin().display(),
            cfg = self.cfg.display(),
            dir = self.dir.display(),
            me = std::process::id()
        );
        let _ = std::fs::remove_file(self.dir.join("pid"));
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.watchdogs.lock().unwrap().push(child);
        let t0 = Instant::now();
        while !self.dir.join("pid").exists() {
            assert!(t0.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("pid")).ok().map(|p| p.trim().to_string())
    }

    /// kill -9 of the server.
    pub fn kill(&self) {
        // None: it never started (no panic here: this runs from Drop too).
        let Some(pid) = self.pid() else { return };
        let _ = Command::new("kill").args(["-9", &pid]).status();
        let t0 = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for mut w in self.watchdogs.lock().unwrap().drain(..) {
            let _ = w.wait();
        }
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&self) {
        self.spawn();
        self.wait_cli(|c| c.args(["status"]));
        self.wait_s3();
    }

    /// The address of prefix `p` in the bucket.
    pub fn url(&self, p: &str) -> String {
        format!("s3://{}/{p}", self.bucket)
    }

    /// `pagelog ARGS` with this server's credentials in its environment.
    pub fn pagelog(&self) -> Command {
        self.pagelog_at(&self.endpoint)
    }

    /// `pagelog ARGS` with this server's credentials, reaching it at
    /// `endpoint` (a proxy in front of it, another node of its cluster).
    pub fn pagelog_at(&self, endpoint: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pagelog"));
        c.env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", "garage")
            .env_remove("AWS_SESSION_TOKEN");
        c
    }

    /// A store client on prefix `p`, for a test to read, damage or time
    /// objects with directly.
    pub fn store(&self, p: &str) -> pagelog_replica::Store {
        let loc = pagelog_replica::Location::parse(&self.url(p)).unwrap();
        let cfg = pagelog_replica::store::Config {
            key_id: self.key_id.clone(),
            secret: self.secret.clone(),
            token: None,
            endpoint: Some(self.endpoint.clone()),
            region: "garage".into(),
            timeout: pagelog_replica::store::DEFAULT_TIMEOUT,
        };
        pagelog_replica::Store::new(loc, cfg).unwrap()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A cluster of Garage nodes on loopback, `replication_factor` = its size,
/// one zone per node, all connected, the layout applied; key `k` and bucket
/// `bkt` created (every node's `key_id`/`secret` are the same).
pub struct Cluster {
    pub nodes: Vec<Garage>,
}

impl Cluster {
    pub fn start(name: &str, n: usize) -> Cluster {
        let secret: String = (0..32).map(|i| format!("{:02x}", (i * 53 + std::process::id() as usize) % 251)).collect();
        let mut nodes: Vec<Garage> = (0..n).map(|i| Garage::node(&format!("{name}-n{i}"), &secret, n as u32)).collect();
        for g in &nodes {
            g.wait_cli(|c| c.arg("status"));
        }
        let ids: Vec<String> = nodes.iter().map(|g| g.node_id()).collect();
        for (g, id) in nodes.iter().zip(&ids).skip(1) {
            let addr = format!("{id}@127.0.0.1:{}", g.rpc_port);
            nodes[0].wait_cli(|c| c.args(["node", "connect", &addr]));
        }
        for (i, id) in ids.iter().enumerate() {
            nodes[0].wait_cli(|c| c.args(["layout", "assign", "-z", &format!("dc{i}"), "-c", "1G", id]));
        }
        nodes[0].wait_cli(|c| c.args(["layout", "apply", "--version", "1"]));
        nodes[0].make_key_and_bucket();
        let (key_id, secret) = (nodes[0].key_id.clone(), nodes[0].secret.clone());
        for g in nodes.iter_mut() {
            g.key_id = key_id.clone();
            g.secret = secret.clone();
            g.wait_s3();
        }
        Cluster { nodes }
    }
}
