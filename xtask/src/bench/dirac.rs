//! `cargo xtask bench dirac`: issue 10's figures of the DIRAC backend against the real
//! DiracX server that `.ci/diracx.sh` runs on loopback.
//!
//! The plugin talks to the server through a small counting proxy in this process (HTTP/1.1
//! passed through byte for byte; each request's head is read to count it and to find
//! where its body ends), so requests are counted, not inferred. Uploads of input sandboxes
//! go to the S3 store the server names, not through the proxy: they are not counted (the
//! jobs here have none).
//!
//! - `submit N` (default 1,000): `ganga submit` of a job of N subjobs of `/bin/true`:
//!   wall time, requests.
//! - `status N` (default 10,000): a job of N subjobs submitted (its submission's figures
//!   shown too), then `ganga-bench poll-all`: one poll cycle over every one of them, as
//!   the monitor makes it (one `poll_all`): time and requests. Every unit must be
//!   answered.
//!
//! The jobs are killed afterwards, so the shared test server does not keep them queued.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs as _};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::Linking;
use super::report::{BenchResult, Figure, Limits, Run, Unit, median, num, process_figures, secs};
use super::scale::{self, Common, Harness};

pub(crate) const USAGE: &str = "\
cargo xtask bench dirac [--submit N] [--status N] [--runs N] [--dir DIR] [--json PATH]
                        [--no-build]

  --submit   subjobs of the submitted job (default 1000)
  --status   DIRAC jobs whose status one poll cycle reads (default 10000)
  --runs     runs of the poll cycle (default 3; the submissions run once)

Needs the DiracX server running (`cargo xtask services start`, or `.ci/diracx.sh start`);
its settings are read from /tmp/ganga-diracx/diracx.env (or $GANGA_DIRACX_ENV).";

// Issue 10's targets.
const STATUS_REQUESTS: f64 = 2.0;
const STATUS_S: f64 = 2.0;
const SUBMIT_REQUESTS: f64 = 60.0;
const SUBMIT_S: f64 = 10.0;

pub(crate) fn bench(root: &Path, args: &[String]) -> anyhow::Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let (common, rest) = Common::take(args, 3)?;
    let (mut submit_n, mut status_n) = (1_000u64, 10_000u64);
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--submit" => submit_n = scale::parse_value(arg, it.next())?,
            "--status" => status_n = scale::parse_value(arg, it.next())?,
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    let server = Server::find()?;
    let proxy = Proxy::start(&server.url)?;
    let plugins = [("ganga-backend-dirac", "ganga_backend_dirac")];
    let mut h = Harness::new(root, "dirac", &common, &plugins)?;
    let mut results = Vec::new();

    let home = h.fresh_home("submit-home")?;
    let config = write_config(&home, &proxy, &server)?;
    let (run, cmd) = submit(&mut h, &proxy, &home, &config, submit_n)?;
    results.push(submit_result(submit_n, cmd, run));
    kill_all(&mut h, &home, &config);

    let home = h.fresh_home("status-home")?;
    let config = write_config(&home, &proxy, &server)?;
    let (run, cmd) = submit(&mut h, &proxy, &home, &config, status_n)?;
    results.push(submit_result(status_n, cmd, run));
    let mut runs = Vec::new();
    let mut shown = String::new();
    for i in 0..common.runs {
        let mut cmd = h.command("ganga-bench", &home);
        cmd.arg("poll-all")
            .arg("--home")
            .arg(&home)
            .args(["--backend", "dirac", "--config"])
            .arg(&config);
        shown = crate::shown(&cmd);
        let before = proxy.count();
        let m = h.logs.measure("poll-all", &mut cmd, true)?;
        let requests = proxy.count() - before;
        let d: Value = serde_json::from_str(&m.output()?).context("poll-all's report")?;
        let units = num(&d, "/result/units") as u64;
        if units != status_n {
            bail!("poll-all asked about {units} units, not {status_n}: {d}");
        }
        eprintln!(
            "bench dirac poll-all {}/{}: {} units in {}, {requests} requests",
            i + 1,
            common.runs,
            units,
            secs(num(&d, "/result/poll_secs"))
        );
        runs.push(Run {
            process: m,
            driver: Some(json!({"requests": requests, "report": d})),
            disk: None,
        });
    }
    results.push(status_result(status_n, shown, runs));
    kill_all(&mut h, &home, &config);
    h.finish(
        args,
        common.json.as_deref(),
        &results,
        json!({"server": server.url, "requests_by_path": proxy.by_path()}),
    )
}

/// The test server's settings, from the env file its start script writes.
struct Server {
    url: String,
    vo: String,
    token_file: String,
}

impl Server {
    fn find() -> anyhow::Result<Server> {
        let path = std::env::var("GANGA_DIRACX_ENV")
            .unwrap_or_else(|_| "/tmp/ganga-diracx/diracx.env".to_owned());
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no DiracX server for this benchmark ({path}): start it with `cargo xtask services start` or `.ci/diracx.sh start`"
            )
        })?;
        let env: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let get = |k: &str| {
            env.get(k)
                .map(|v| (*v).to_owned())
                .with_context(|| format!("{path} has no {k}"))
        };
        let server = Server {
            url: get("DIRACX_URL")?,
            vo: get("DIRACX_VO")?,
            token_file: get("DIRACX_TOKEN_ALICE")?,
        };
        let ready = std::process::Command::new("curl")
            .args(["-sf", "-o", "/dev/null"])
            .arg(format!("{}/api/health/ready", server.url))
            .status()
            .is_ok_and(|s| s.success());
        if !ready {
            bail!(
                "the DiracX server at {} does not answer: start it with `.ci/diracx.sh start`",
                server.url
            );
        }
        Ok(server)
    }
}

fn write_config(home: &Path, proxy: &Proxy, server: &Server) -> anyhow::Result<std::path::PathBuf> {
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[monitor]\nbackground = false\n[plugin.dirac]\nurl = \"http://{}\"\nvo = \"{}\"\ngroup = \"user\"\n\
             token_file = \"{}\"\n",
            proxy.addr, server.vo, server.token_file
        ),
    )?;
    Ok(config)
}

fn submit(
    h: &mut Harness,
    proxy: &Proxy,
    home: &Path,
    config: &Path,
    n: u64,
) -> anyhow::Result<(Run, String)> {
    let job_file =
        scale::write_true_job(home, &format!("bench-dirac-{n}"), "type = \"dirac\"\n", n)?;
    let mut cmd = h.command("ganga", home);
    cmd.arg("--config").arg(config).arg("submit").arg(&job_file);
    let shown = crate::shown(&cmd);
    let before = proxy.count();
    // `ganga submit` exits non-zero when any unit was refused: the benchmark fails.
    let m = h
        .logs
        .measure(&format!("submit-{n}"), &mut cmd, true)
        .with_context(|| format!("submitting {n} subjobs to DIRAC"))?;
    let requests = proxy.count() - before;
    let shown_job = h.ganga_json(home, Some(config), &["show", "0", "--json"])?;
    eprintln!(
        "bench dirac submit {n}: {}, {requests} requests; job 0 {}",
        secs(m.wall_secs),
        shown_job["run"]["status"]
    );
    Ok((
        Run {
            process: m,
            driver: Some(json!({"requests": requests, "job": shown_job["run"]})),
            disk: None,
        },
        shown,
    ))
}

/// Kills the home's jobs at DIRAC (unmeasured): the shared test server keeps no queue of
/// them.
fn kill_all(h: &mut Harness, home: &Path, config: &Path) {
    let mut cmd = h.command("ganga", home);
    cmd.arg("--config").arg(config).args(["kill", "0"]);
    if let Err(e) = h.logs.measure("kill", &mut cmd, false) {
        eprintln!("bench: warning: the benchmark's DIRAC jobs were not all killed: {e:#}");
    }
}

fn driver(r: &Run, pointer: &str) -> f64 {
    r.driver.as_ref().map_or(f64::NAN, |d| num(d, pointer))
}

fn submit_result(n: u64, command: String, run: Run) -> BenchResult {
    let limit = |t: f64| (n == 1_000).then_some(t);
    let figures = vec![
        Figure::new("wall_secs", run.process.wall_secs, Unit::Secs, "")
            .at_most(limit(SUBMIT_S), secs),
        Figure::new("peak_rss_mib", run.process.peak_rss_mib(), Unit::Mib, ""),
        Figure::new("subjobs", n as f64, Unit::Count, "subjobs"),
        Figure::new(
            "requests",
            driver(&run, "/requests"),
            Unit::Count,
            "requests",
        )
        .at_most(limit(SUBMIT_REQUESTS), |t| format!("{t}")),
    ];
    BenchResult {
        benchmark: format!("dirac submit {n}"),
        linking: Linking::Dynamic.name().to_owned(),
        command,
        runs: vec![run],
        figures,
    }
}

fn status_result(n: u64, command: String, runs: Vec<Run>) -> BenchResult {
    let med = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let mut figures = process_figures(&runs, Limits::default());
    figures.extend([
        Figure::new("units", n as f64, Unit::Count, "DIRAC jobs"),
        Figure::new(
            "poll_secs",
            med(&|r| driver(r, "/report/result/poll_secs")),
            Unit::Secs,
            "one poll cycle",
        )
        .at_most(Some(STATUS_S), secs),
        Figure::new(
            "requests",
            med(&|r| driver(r, "/requests")),
            Unit::Count,
            "requests",
        )
        .at_most(Some(STATUS_REQUESTS), |t| format!("{t}")),
    ]);
    BenchResult {
        benchmark: format!("dirac status {n}"),
        linking: Linking::Dynamic.name().to_owned(),
        command,
        runs,
        figures,
    }
}

/// A counting HTTP/1.1 proxy on loopback in front of the server.
struct Proxy {
    addr: SocketAddr,
    /// Every request's method and path (without its query).
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(url: &str) -> anyhow::Result<Proxy> {
        let hostport = url
            .strip_prefix("http://")
            .with_context(|| format!("the test server's URL {url} is not http://"))?
            .trim_end_matches('/');
        let upstream = hostport
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {hostport}"))?
            .next()
            .with_context(|| format!("{hostport} has no address"))?;
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot listen on loopback")?;
        let addr = listener.local_addr()?;
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        // Serves until this process ends.
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    if let Err(e) = relay(client, upstream, &log) {
                        eprintln!("bench: proxy: {e:#}");
                    }
                });
            }
        });
        Ok(Proxy { addr, seen })
    }

    fn count(&self) -> u64 {
        self.seen.lock().map_or(0, |s| s.len() as u64)
    }

    fn by_path(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        if let Ok(seen) = self.seen.lock() {
            for s in seen.iter() {
                *out.entry(s.clone()).or_insert(0) += 1;
            }
        }
        out
    }
}

/// Passes one connection through: answers back as they come, requests one by one, each
/// counted.
fn relay(client: TcpStream, upstream: SocketAddr, log: &Mutex<Vec<String>>) -> anyhow::Result<()> {
    let server = TcpStream::connect(upstream).context("cannot reach the server")?;
    let (mut back_from, mut back_to) = (server.try_clone()?, client.try_clone()?);
    let answers = std::thread::spawn(move || {
        let _ = std::io::copy(&mut back_from, &mut back_to);
        let _ = back_to.shutdown(std::net::Shutdown::Write);
    });
    let mut from = BufReader::new(client);
    let mut to = server;
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if from.read_until(b'\n', &mut line)? == 0 {
                let _ = to.shutdown(std::net::Shutdown::Write);
                let _ = answers.join();
                return Ok(());
            }
            let end = line == b"\r\n" || line == b"\n";
            head.extend_from_slice(&line);
            if end {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.lines();
        let first = lines.next().unwrap_or_default();
        let mut words = first.split_whitespace();
        let method = words.next().unwrap_or_default();
        let path = words
            .next()
            .unwrap_or_default()
            .split('?')
            .next()
            .unwrap_or_default();
        if let Ok(mut seen) = log.lock() {
            seen.push(format!("{method} {path}"));
        }
        let header = |name: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        to.write_all(&head)?;
        if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            loop {
                let mut size_line = Vec::new();
                from.read_until(b'\n', &mut size_line)?;
                to.write_all(&size_line)?;
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&size_line)
                        .trim()
                        .split(';')
                        .next()
                        .unwrap_or("0"),
                    16,
                )
                .context("a chunk size")?;
                let mut chunk = vec![0u8; size + 2];
                from.read_exact(&mut chunk)?;
                to.write_all(&chunk)?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(len) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
            let copied = std::io::copy(&mut (&mut from).take(len), &mut to)?;
            if copied != len {
                bail!("a request body ended after {copied} of {len} bytes");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that answers every request with `HTTP/1.1 200` and counts the bytes of
    /// requests it got; the proxy must count each request once, keep-alive, with bodies
    /// of known length and chunked.
    #[test]
    fn the_proxy_counts_each_request_of_a_kept_alive_connection_once() {
        let upstream = TcpListener::bind("127.0.0.1:0").expect("a port");
        let at = upstream.local_addr().expect("an address");
        let got = Arc::new(Mutex::new(Vec::<u8>::new()));
        let got2 = got.clone();
        std::thread::spawn(move || {
            for conn in upstream.incoming().flatten() {
                let mut conn = conn;
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got2.lock().expect("lock").extend_from_slice(&buf[..n]);
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            }
        });
        let proxy = Proxy::start(&format!("http://{at}")).expect("a proxy");
        let mut c = TcpStream::connect(proxy.addr).expect("connects");
        let sent = b"POST /api/jobs/jdl?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n[1,2]\
GET /api/health HTTP/1.1\r\nHost: h\r\n\r\n\
POST /api/jobs/search HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        c.write_all(sent).expect("sends");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while (proxy.count() < 3 || got.lock().expect("lock").len() < sent.len())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(proxy.count(), 3, "{:?}", proxy.by_path());
        assert_eq!(proxy.by_path().get("POST /api/jobs/jdl"), Some(&1));
        assert_eq!(proxy.by_path().get("POST /api/jobs/search"), Some(&1));
        assert_eq!(
            *got.lock().expect("lock"),
            sent.to_vec(),
            "passed through as sent"
        );
    }
}
