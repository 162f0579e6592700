use ingressd::config::{Command, Config};

fn main() {
    let env = |k: &str| std::env::var(k).ok();
    match Config::parse(std::env::args().skip(1), &env) {
        Ok(Command::Help) => print!("{}", Config::help()),
        Ok(Command::Version) => println!("ingressd {}", env!("CARGO_PKG_VERSION")),
        Ok(Command::Run(_config)) => {}
        Err(e) => {
            eprintln!("ingressd: {e}");
            std::process::exit(2);
        }
    }
}
