//! Test-only plugin that misbehaves on request, to prove the host contains
//! it. The first installer argument picks the behaviour. Never shipped.

use std::hint::black_box;

use upkeep_plugin_sdk::{InstallError, InstallRequest, InstallSuccess, Installer, LogLevel, log, set_permissions};

struct Hostile;

/// State a plugin might hope to carry from one call to the next: a static
/// counter and a note on the heap.
static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static NOTE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Recursion on the wasm stack only (scalars live in wasm locals), so it
/// runs into the host's wasm stack limit.
#[inline(never)]
fn depth(n: u32) -> u32 {
    if n == 0 {
        return 0;
    }
    depth(n - 1).rotate_left(1) ^ n
}

/// Recursion with big locals: they live on the plugin's own shadow stack in
/// linear memory, which runs out first.
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let local = black_box([n; 16]);
    black_box(recurse(local[3] + 1)) + local[7]
}

/// Tries one way out; reports whether it got through.
fn attempt(name: &str, result: Result<String, String>, out: &mut Vec<String>) {
    out.push(match result {
        Ok(what) => format!("ESCAPED {name}: {what}"),
        Err(e) => format!("denied {name}: {e}"),
    });
}

/// Opens a TCP connection to 127.0.0.1:9 through wasi:sockets directly.
fn tcp_connect() -> Result<String, String> {
    use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    let network = wasip2::sockets::instance_network::instance_network();
    let socket = wasip2::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)
        .map_err(|e| format!("create socket: {e:?}"))?;
    let address = IpSocketAddress::Ipv4(Ipv4SocketAddress { port: 9, address: (127, 0, 0, 1) });
    socket.start_connect(&network, address).map_err(|e| format!("connect: {e:?}"))?;
    Ok("started a connection to 127.0.0.1:9".into())
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

fn escape_attempts() -> String {
    let mut out = Vec::new();
    attempt("dotdot-read", read("/install/../secret.txt"), &mut out);
    attempt("absolute-read", read("/etc/hostname"), &mut out);
    attempt("symlink-read", read("/install/link-out/secret.txt"), &mut out);
    attempt("payload-symlink-read", read("/payload/link-out/secret.txt"), &mut out);
    attempt(
        "payload-write",
        std::fs::write("/payload/planted", b"x").map(|_| "wrote /payload/planted".into()).map_err(|e| e.to_string()),
        &mut out,
    );
    attempt(
        "chmod-dotdot",
        set_permissions("/install", "../secret.txt", 0o777).map(|_| "changed ../secret.txt".into()),
        &mut out,
    );
    attempt(
        "chmod-symlink",
        set_permissions("/install", "link-out/secret.txt", 0o777).map(|_| "changed link-out/secret.txt".into()),
        &mut out,
    );
    attempt(
        "chmod-absolute",
        set_permissions("/install", "/etc/hostname", 0o777).map(|_| "changed /etc/hostname".into()),
        &mut out,
    );
    attempt(
        "chmod-readonly-mount",
        set_permissions("/payload", "payload.txt", 0o777).map(|_| "changed /payload/payload.txt".into()),
        &mut out,
    );
    attempt(
        "chmod-setuid",
        set_permissions("/install", "inside.txt", 0o4755).map(|_| "set setuid on inside.txt".into()),
        &mut out,
    );
    attempt(
        "environment",
        match std::env::vars().count() {
            0 => Err("no variables".into()),
            n => Ok(format!("{n} variables visible")),
        },
        &mut out,
    );
    attempt(
        "network",
        tcp_connect(),
        &mut out,
    );
    // A control: writing inside the install directory works.
    match std::fs::write("/install/written-inside.txt", b"ok") {
        Ok(()) => out.push("allowed inside-write".into()),
        Err(e) => out.push(format!("FAILED inside-write: {e}")),
    }
    out.join("\n")
}

impl Installer for Hostile {
    fn run(request: InstallRequest) -> Result<InstallSuccess, InstallError> {
        let mode = request.arguments.first().map(String::as_str).unwrap_or("");
        match mode {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0xA5; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recursion" => {
                let d = depth(black_box(u32::MAX));
                Ok(InstallSuccess { message: Some(format!("depth {d}")) })
            }
            "stack-smash" => {
                black_box(recurse(0));
                unreachable!()
            }
            "log-flood" => {
                let line = "x".repeat(200);
                for i in 0..200_000u32 {
                    log(LogLevel::Info, &format!("{i} {line}"));
                }
                Ok(InstallSuccess { message: Some("flooded the log".into()) })
            }
            "stdout-flood" => {
                let line = "y".repeat(1000);
                loop {
                    println!("{line}");
                }
            }
            "panic" => panic!("the hostile plugin panics on purpose"),
            "remember" => {
                let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let mut slot = NOTE.lock().unwrap_or_else(|e| e.into_inner());
                let note = slot.replace(format!("left by call {calls}"));
                Ok(InstallSuccess { message: Some(format!("call {calls}; found: {}", note.unwrap_or_else(|| "nothing".into()))) })
            }
            "escape" => Ok(InstallSuccess { message: Some(escape_attempts()) }),
            other => Err(InstallError { code: 99, extra_code: 0, message: format!("unknown mode {other:?}") }),
        }
    }
}

upkeep_plugin_sdk::export_installer!(Hostile);
