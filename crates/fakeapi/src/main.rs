//! `fake-apiserver`: the fake API server as a process, for shell scripts and demos, plus
//! two certificate helpers (`gen-cert`, `secret`) so scripts need no openssl.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use fakeapi::certs::{self, Ca, Issued};
use fakeapi::{FakeApi, Options};
use serde_json::Value;

const USAGE: &str = "usage:
  fake-apiserver [--addr IP:PORT] [--plain-http] [--token T]... [--token-file F] [--objects FILE]
                 [--ca-cert F --ca-key F] [--ca-out FILE] [--history N] [--bookmark-interval SECS]
                 [--ready-file F]
  fake-apiserver gen-cert --cn NAME --san X [--san Y]... --cert-out F --key-out F [--ca-cert F --ca-key F]
  fake-apiserver secret --namespace NS --name N --cert F --key F";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("gen-cert") => gen_cert(&args[1..]),
        Some("secret") => secret(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => serve(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("fake-apiserver: {message}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(message)) => {
            eprintln!("fake-apiserver: {message}");
            ExitCode::FAILURE
        }
    }
}

/// How the command failed: usage errors exit 2, the rest 1.
enum Failure {
    /// The command line is wrong.
    Usage(String),
    /// A file, the network or a certificate failed.
    Runtime(String),
}

fn runtime(context: &str) -> impl Fn(&dyn std::fmt::Display) -> Failure + '_ {
    move |e| Failure::Runtime(format!("{context}: {e}"))
}

/// `--flag value` pairs; repeated flags keep every value in order.
struct Flags {
    pairs: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Flags {
    fn parse(args: &[String], switches: &[&str], valued: &[&str]) -> Result<Flags, Failure> {
        let mut flags = Flags { pairs: Vec::new(), switches: Vec::new() };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if switches.contains(&arg.as_str()) {
                flags.switches.push(arg.clone());
            } else if valued.contains(&arg.as_str()) {
                let value = iter.next().ok_or_else(|| Failure::Usage(format!("{arg} needs a value")))?;
                flags.pairs.push((arg.clone(), value.clone()));
            } else {
                return Err(Failure::Usage(format!("unknown argument {arg:?}")));
            }
        }
        Ok(flags)
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    fn required(&self, name: &str) -> Result<&str, Failure> {
        self.one(name).ok_or_else(|| Failure::Usage(format!("{name} is required")))
    }

    fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

fn read(path: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::Runtime(format!("reading {path}: {e}")))
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text).map_err(|e| Failure::Runtime(format!("writing {}: {e}", path.display())))
}

/// Writes then renames, so a script polling for the file never reads half of it.
fn write_atomically(path: &Path, text: &str) -> Result<(), Failure> {
    let mut temporary = PathBuf::from(path);
    temporary.set_extension("tmp-fakeapi");
    write(&temporary, text)?;
    std::fs::rename(&temporary, path).map_err(|e| Failure::Runtime(format!("renaming to {}: {e}", path.display())))
}

/// The CA in these files, or a new one written there when neither file exists, so a
/// restarted server keeps the CA that clients already trust.
fn load_or_create_ca(cert_path: &str, key_path: &str, create: bool) -> Result<Ca, Failure> {
    let (cert_exists, key_exists) = (Path::new(cert_path).exists(), Path::new(key_path).exists());
    match (cert_exists, key_exists) {
        (true, true) => Ca::from_pem(&read(cert_path)?, &read(key_path)?).map_err(|e| runtime(cert_path)(&e)),
        (false, false) if create => {
            let ca = Ca::new("fakeapi CA");
            write(Path::new(cert_path), &ca.cert_pem())?;
            write(Path::new(key_path), &ca.key_pem())?;
            Ok(ca)
        }
        _ => Err(Failure::Runtime(format!("need both CA files, found cert={cert_exists} key={key_exists}"))),
    }
}

fn serve(args: &[String]) -> Result<(), Failure> {
    let flags = Flags::parse(
        args,
        &["--plain-http"],
        &["--addr", "--token", "--token-file", "--objects", "--ca-cert", "--ca-key", "--ca-out", "--history", "--bookmark-interval", "--ready-file"],
    )?;
    let mut opts = Options { tls: !flags.has("--plain-http"), ..Options::default() };
    if let Some(addr) = flags.one("--addr") {
        opts.addr = addr.parse::<SocketAddr>().map_err(|e| Failure::Usage(format!("--addr {addr:?}: {e}")))?;
    }
    opts.tokens = flags.all("--token").into_iter().map(String::from).collect();
    if let Some(path) = flags.one("--token-file") {
        let text = read(path)?;
        let tokens = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        opts.tokens.extend(tokens.map(String::from));
        if opts.tokens.is_empty() {
            return Err(Failure::Runtime(format!("{path} holds no token")));
        }
    }
    if let Some(path) = flags.one("--objects") {
        let value: Value = serde_json::from_str(&read(path)?).map_err(|e| runtime(path)(&e))?;
        opts.objects = match value.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ => vec![value],
        };
    }
    match (flags.one("--ca-cert"), flags.one("--ca-key")) {
        (Some(cert), Some(key)) => opts.ca = Some(load_or_create_ca(cert, key, true)?),
        (None, None) => {}
        _ => return Err(Failure::Usage("--ca-cert and --ca-key go together".into())),
    }
    if let Some(n) = flags.one("--history") {
        opts.history = n.parse().map_err(|_| Failure::Usage(format!("--history {n:?} is not a count")))?;
    }
    if let Some(secs) = flags.one("--bookmark-interval") {
        let secs: f64 = secs.parse().ok().filter(|s: &f64| *s > 0.0 && s.is_finite())
            .ok_or_else(|| Failure::Usage(format!("--bookmark-interval {secs:?} is not a positive number")))?;
        opts.bookmark_interval = Duration::from_secs_f64(secs);
    }

    let api = FakeApi::start(opts).map_err(|e| runtime("starting")(&e))?;
    if let Some(path) = flags.one("--ca-out") {
        write_atomically(Path::new(path), &api.ca_pem())?;
    }
    println!("listening on {}", api.url());
    if let Some(path) = flags.one("--ready-file") {
        write_atomically(Path::new(path), &format!("{}\n", api.url()))?;
    }
    // Serve until killed; the threads do the work.
    loop {
        std::thread::park();
    }
}

fn gen_cert(args: &[String]) -> Result<(), Failure> {
    let flags = Flags::parse(args, &[], &["--cn", "--san", "--cert-out", "--key-out", "--ca-cert", "--ca-key"])?;
    let cn = flags.required("--cn")?;
    let (cert_out, key_out) = (flags.required("--cert-out")?, flags.required("--key-out")?);
    let sans = flags.all("--san");
    if sans.is_empty() {
        return Err(Failure::Usage("at least one --san is required".into()));
    }
    let issued: Issued = match (flags.one("--ca-cert"), flags.one("--ca-key")) {
        (Some(cert), Some(key)) => load_or_create_ca(cert, key, false)?.issue(cn, &sans),
        (None, None) => certs::self_signed(cn, &sans),
        _ => return Err(Failure::Usage("--ca-cert and --ca-key go together".into())),
    };
    write(Path::new(cert_out), &issued.cert_pem)?;
    write(Path::new(key_out), &issued.key_pem)
}

fn secret(args: &[String]) -> Result<(), Failure> {
    let flags = Flags::parse(args, &[], &["--namespace", "--name", "--cert", "--key"])?;
    let issued = Issued { cert_pem: read(flags.required("--cert")?)?, key_pem: read(flags.required("--key")?)? };
    let secret = certs::tls_secret(flags.required("--namespace")?, flags.required("--name")?, &issued);
    let text = serde_json::to_string_pretty(&secret).map_err(|e| runtime("encoding")(&e))?;
    println!("{text}");
    Ok(())
}
