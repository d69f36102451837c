//! A `redis-server` of a test's own: started on a free loopback port with a password,
//! without persistence, and killed on drop (continued first, should a test have
//! frozen it). For the tests of this crate, the CLI and the benchmarks; needs Debian's
//! `redis-server` on PATH (`make redis` installs it).

use aegis_core::StateConfig;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password every test server requires.
pub const PASSWORD: &str = "fleet-test-pw";

/// A running test server.
pub struct TestRedis {
    child: Option<Child>,
    port: u16,
}

impl TestRedis {
    /// Starts one on a free port.
    pub fn start() -> Result<TestRedis, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        TestRedis::on(port)
    }

    /// Starts one on `port` (a restart on the same port, empty).
    pub fn on(port: u16) -> Result<TestRedis, String> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--requirepass", PASSWORD])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server could not be started (make redis installs it): {e}"))?;
        let mut server = TestRedis { child: Some(child), port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                server.stop();
                return Err(format!("redis-server did not listen on port {port} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://:PASSWORD@127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://:{PASSWORD}@127.0.0.1:{}/0", self.port)
    }

    /// The state settings for a fleet under `prefix` (the other settings default).
    pub fn config(&self, prefix: &str) -> StateConfig {
        StateConfig { prefix: prefix.into(), ..StateConfig::new(self.url()) }
    }

    /// Sends a signal (`-STOP`, `-CONT`) to the server.
    pub fn signal(&self, sig: &str) -> Result<(), String> {
        let pid = self.child.as_ref().ok_or("the server is stopped")?.id().to_string();
        match Command::new("kill").args([sig, &pid]).status() {
            Ok(s) if s.success() => Ok(()),
            other => Err(format!("kill {sig} {pid}: {other:?}")),
        }
    }

    /// Kills the server (its data is gone).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // A frozen server ignores nothing but SIGKILL; continue it anyway so no
        // stopped process is left behind whatever the platform.
        let _ = self.signal("-CONT");
        self.stop();
    }
}
