//! Out of file descriptors, the accept loop backs off instead of spinning, and serves the
//! waiting connection once descriptors are free again.
//!
//! Its own test binary (one process, one test): it lowers the process's open-file limit,
//! hard limit included, and fills every descriptor left.

use std::fs::File;
use std::io::{Read, Write};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use routerly_core::config::Connections;
use routerly_server::net::serve_connections;

/// Open-file limit of this process during the test: below the descriptors the connection
/// cap keeps in reserve, so the cap itself cannot prevent exhaustion.
const LIMIT: u64 = 128;

/// CPU seconds this process has used (user + system), from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces) start at the state, field 3;
    // utime and stime are fields 14 and 15, in clock ticks of 1/100 s on Linux.
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[test]
fn accept_backs_off_while_descriptors_run_out_and_serves_once_they_are_free() {
    rlimit::setrlimit(rlimit::Resource::NOFILE, LIMIT, LIMIT).expect("lower the open-file limit");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // Connected before the descriptors run out: the kernel completes the handshake and
        // the connection waits in the accept queue.
        let mut client = std::net::TcpStream::connect(address).unwrap();
        client
            .write_all(b"GET /health HTTP/1.1\r\nhost: routerly\r\nconnection: close\r\n\r\n")
            .unwrap();
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

        let before = cpu_seconds();
        let mut fillers = Vec::new();
        loop {
            match File::open("/dev/null") {
                Ok(file) => fillers.push(file),
                Err(error) if error.raw_os_error() == Some(24) => break, // EMFILE
                Err(error) => panic!("unexpected error while filling descriptors: {error}"),
            }
        }
        assert!(
            matches!(std::net::TcpListener::bind("127.0.0.1:0"), Err(e) if e.raw_os_error() == Some(24)),
            "every descriptor is in use"
        );

        let router = Router::new().route("/health", get(|| async { "ok" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_connections(
            listener,
            router,
            None,
            Connections::default(),
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        ));

        // A loop retrying `accept` at once would keep a core busy all along.
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(fillers);
        let used = cpu_seconds() - before;
        assert!(
            used < 0.3,
            "the accept loop used {used:.2} s of CPU in the second without descriptors"
        );

        // Served as soon as the next (backed-off) accept succeeds.
        let answer = tokio::task::spawn_blocking(move || {
            let mut answer = String::new();
            client.read_to_string(&mut answer).map(|_| answer)
        })
        .await
        .unwrap()
        .expect("the waiting connection is served once descriptors are free");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server stops")
            .unwrap();
    });
}
