//! Dockerfile.scratch cannot be built on the development machine (no
//! container engine), so its structure is checked here: a musl builder stage
//! that sees the whole workspace, and a final `FROM scratch` stage that holds
//! exactly one file and runs it as a numeric non-root user.

use std::path::Path;

/// One instruction with its continuation lines joined.
#[derive(Debug, Clone, PartialEq)]
struct Instruction {
    keyword: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    base: String,
    name: Option<String>,
    instructions: Vec<Instruction>,
}

fn parse_instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            // A comment inside a continued instruction is dropped by Docker too.
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let (keyword, args) = pending.split_once(char::is_whitespace).unwrap_or((pending.as_str(), ""));
        out.push(Instruction { keyword: keyword.to_ascii_uppercase(), args: args.split_whitespace().collect::<Vec<_>>().join(" ") });
        pending.clear();
    }
    assert!(pending.is_empty(), "the Dockerfile ends inside a continued line");
    out
}

fn stages(text: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in parse_instructions(text) {
        if instruction.keyword == "FROM" {
            let words: Vec<&str> = instruction.args.split(' ').filter(|w| !w.starts_with("--platform")).collect();
            let (base, name) = match words.as_slice() {
                [base] => (base.to_string(), None),
                [base, as_, name] if as_.eq_ignore_ascii_case("as") => (base.to_string(), Some(name.to_string())),
                other => panic!("unexpected FROM {other:?}"),
            };
            stages.push(Stage { base, name, instructions: Vec::new() });
        } else {
            match stages.last_mut() {
                Some(stage) => stage.instructions.push(instruction),
                None if instruction.keyword == "ARG" => {}
                None => panic!("{} before the first FROM", instruction.keyword),
            }
        }
    }
    stages
}

/// The workspace paths Cargo needs to load the root manifest: every workspace
/// member, every path dependency or patch, and the file of every explicitly
/// declared target (`[[bench]]`, `[[test]]`, ...), because Cargo refuses the
/// whole manifest when one of those files is missing.
fn workspace_paths() -> Vec<String> {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("Cargo.toml");
    let default_dir = |section: &str| match section {
        "[[bench]]" => Some("benches"),
        "[[test]]" => Some("tests"),
        "[[example]]" => Some("examples"),
        "[[bin]]" => Some("src/bin"),
        _ => None,
    };
    let mut paths = Vec::new();
    let mut in_members = false;
    let mut section = String::new();
    let mut target: Option<(String, Option<String>)> = None;
    let finish_target = |section: &str, target: &mut Option<(String, Option<String>)>, paths: &mut Vec<String>| {
        if let (Some(dir), Some((name, path))) = (default_dir(section), target.take()) {
            paths.push(path.unwrap_or_else(|| format!("{dir}/{name}.rs")));
        }
    };
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            finish_target(&section, &mut target, &mut paths);
            section = line.to_string();
            continue;
        }
        if line.starts_with("members") {
            in_members = true;
        }
        if in_members {
            for quoted in line.split('"').skip(1).step_by(2) {
                if quoted != "." {
                    paths.push(quoted.to_string());
                }
            }
            if line.contains(']') {
                in_members = false;
            }
        }
        let value = |key: &str| line.strip_prefix(key).and_then(|rest| rest.split('"').nth(1)).map(str::to_string);
        if default_dir(&section).is_some() {
            if let Some(name) = value("name =") {
                target.get_or_insert((String::new(), None)).0 = name;
            }
            if let Some(path) = value("path =") {
                target.get_or_insert((String::new(), None)).1 = Some(path);
            }
        } else if let Some(rest) = line.split("path = \"").nth(1) {
            if let Some(path) = rest.split('"').next() {
                paths.push(path.to_string());
            }
        }
    }
    finish_target(&section, &mut target, &mut paths);
    paths.sort();
    paths.dedup();
    paths
}

/// Every rule the image must follow; `Err` names the first one broken.
fn check(text: &str) -> Result<(), String> {
    let stages = stages(text);
    let [builder, last] = stages.as_slice() else {
        return Err(format!("expected exactly two stages (builder, final), found {}", stages.len()));
    };

    // The builder compiles for musl from the whole workspace.
    let builder_name = builder.name.as_deref().ok_or("the builder stage has no name (FROM ... AS builder)")?;
    let runs: Vec<&str> = builder.instructions.iter().filter(|i| i.keyword == "RUN").map(|i| i.args.as_str()).collect();
    if !runs.iter().any(|r| r.contains("rustup target add x86_64-unknown-linux-musl")) {
        return Err("the builder does not install the x86_64-unknown-linux-musl target".into());
    }
    let build = runs
        .iter()
        .find(|r| r.contains("cargo build"))
        .ok_or("the builder never runs cargo build")?;
    for needed in ["--release", "--target x86_64-unknown-linux-musl", "-p ingressd", "--locked"] {
        if !build.contains(needed) {
            return Err(format!("cargo build in the builder lacks {needed}: {build}"));
        }
    }
    let copied: Vec<String> = builder
        .instructions
        .iter()
        .filter(|i| i.keyword == "COPY")
        .flat_map(|i| {
            let words: Vec<&str> = i.args.split(' ').collect();
            words[..words.len().saturating_sub(1)].iter().map(|w| w.trim_end_matches('/').to_string()).collect::<Vec<_>>()
        })
        .collect();
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string(), "src".to_string()];
    needed.extend(workspace_paths());
    for path in &needed {
        let covered = copied.iter().any(|c| c == "." || c == path || path.starts_with(&format!("{c}/")));
        if !covered {
            return Err(format!("the builder does not copy {path}, which the workspace needs"));
        }
    }
    let workdir = builder
        .instructions
        .iter()
        .rev()
        .find(|i| i.keyword == "WORKDIR")
        .map(|i| i.args.trim_end_matches('/').to_string())
        .ok_or("the builder sets no WORKDIR")?;

    // The final stage: scratch, one file, numeric non-root user, exec-form entrypoint.
    if last.base != "scratch" {
        return Err(format!("the final stage is FROM {}, not scratch", last.base));
    }
    for i in &last.instructions {
        if !["COPY", "USER", "ENTRYPOINT", "EXPOSE", "LABEL", "CMD"].contains(&i.keyword.as_str()) {
            return Err(format!("the final stage has a {} instruction; only COPY, USER, ENTRYPOINT, EXPOSE, LABEL, CMD belong there", i.keyword));
        }
    }
    let copies: Vec<&Instruction> = last.instructions.iter().filter(|i| i.keyword == "COPY").collect();
    let [copy] = copies.as_slice() else {
        return Err(format!("the final stage must have exactly one COPY, found {}", copies.len()));
    };
    let words: Vec<&str> = copy.args.split(' ').collect();
    let [from, source, destination] = words.as_slice() else {
        return Err(format!("the final COPY must copy one file from the builder: COPY {}", copy.args));
    };
    if *from != format!("--from={builder_name}") {
        return Err(format!("the final COPY is {from}, not --from={builder_name}"));
    }
    let expected_source = format!("{workdir}/target/x86_64-unknown-linux-musl/release/ingressd");
    if *source != expected_source {
        return Err(format!("the final COPY takes {source}, but the musl build writes {expected_source}"));
    }
    let user = last
        .instructions
        .iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .ok_or("the final stage sets no USER, so it would run as root")?;
    for id in user.args.split(':') {
        match id.parse::<u32>() {
            Ok(0) => return Err("USER is root".into()),
            Ok(_) => {}
            Err(_) => return Err(format!("USER {} is not numeric; scratch has no /etc/passwd", user.args)),
        }
    }
    let entrypoint = last
        .instructions
        .iter()
        .rev()
        .find(|i| i.keyword == "ENTRYPOINT")
        .ok_or("the final stage has no ENTRYPOINT")?;
    let expected_entrypoint = format!("[\"{destination}\"]");
    if entrypoint.args != expected_entrypoint || *destination != "/ingressd" {
        return Err(format!("ENTRYPOINT is {}, expected [\"/ingressd\"] (exec form: scratch has no shell)", entrypoint.args));
    }
    Ok(())
}

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile.scratch")).expect("Dockerfile.scratch")
}

#[test]
fn the_image_is_a_musl_builder_and_a_scratch_stage_with_one_file() {
    if let Err(problem) = check(&dockerfile()) {
        panic!("Dockerfile.scratch: {problem}");
    }
}

#[test]
fn the_workspace_list_covers_members_and_path_patches() {
    let paths = workspace_paths();
    assert!(paths.contains(&"crates/fakeapi".to_string()), "{paths:?}");
    assert!(paths.contains(&"vendor/tiny_http".to_string()), "{paths:?}");
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).expect("Cargo.toml");
    if manifest.contains("name = \"route_compile\"") {
        assert!(paths.contains(&"benches/route_compile.rs".to_string()), "{paths:?}");
    }
}

/// Each mutation breaks one rule; the check must notice every one of them, or
/// it would pass a broken image too.
#[test]
fn broken_variants_are_refused() {
    let good = dockerfile();
    let mutations: &[(&str, &str, &str)] = &[
        ("x86_64-unknown-linux-musl -p ingressd", "x86_64-unknown-linux-gnu -p ingressd", "cargo build in the builder lacks --target"),
        ("USER 65532:65532", "USER 0", "root"),
        ("USER 65532:65532", "USER nonroot", "not numeric"),
        ("USER 65532:65532", "", "no USER"),
        ("ENTRYPOINT [\"/ingressd\"]", "ENTRYPOINT /ingressd", "ENTRYPOINT"),
        ("COPY crates ./crates", "COPY crates/other ./crates/other", "crates/fakeapi"),
        ("COPY vendor ./vendor", "", "vendor/tiny_http"),
        ("COPY benches ./benches", "", "benches/"),
        ("FROM scratch", "FROM debian:bookworm-slim", "not scratch"),
        (
            "COPY --from=builder /src/target/x86_64-unknown-linux-musl/release/ingressd /ingressd",
            "COPY --from=builder /src/target/x86_64-unknown-linux-musl/release/ingressd /ingressd\nCOPY --from=builder /etc/passwd /etc/passwd",
            "exactly one COPY",
        ),
        ("EXPOSE 80 443 10254", "RUN true", "RUN instruction"),
    ];
    for (from, to, expected) in mutations {
        assert!(good.contains(from), "mutation anchor {from:?} is not in Dockerfile.scratch");
        let broken = good.replacen(from, to, 1);
        match check(&broken) {
            Ok(()) => panic!("a Dockerfile with {from:?} -> {to:?} passed the check"),
            Err(problem) => assert!(problem.contains(expected), "{from:?} -> {to:?}: got {problem:?}, expected it to mention {expected:?}"),
        }
    }
}

#[test]
fn continuation_lines_and_comments_are_joined_like_docker_does() {
    let parsed = parse_instructions("# c\nRUN a \\\n  # inner\n  && b\nFROM x AS y\n");
    assert_eq!(parsed[0], Instruction { keyword: "RUN".into(), args: "a && b".into() });
    assert_eq!(parsed[1].args, "x AS y");
}
