//! Dockerfile.scratch's structure, checked without a container engine: a
//! musl builder stage that sees the whole workspace, a stage for a prebuilt
//! binary, and `FROM scratch` images that hold exactly one file, carrying the
//! NET_BIND_SERVICE file capability, run as a numeric non-root user.
//! scripts/image-smoke.sh builds the prebuilt target with podman and runs it.

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

/// The capability the binary carries, exactly as setcap is given it.
const FILE_CAPABILITY: &str = "cap_net_bind_service=+ep";

/// Where scripts/build-static.sh writes the static glibc binary.
const STATIC_BINARY: &str = "target/x86_64-unknown-linux-gnu/release/ingressd";

fn words(args: &str) -> Vec<&str> {
    args.split(' ').collect()
}

/// Checks a final image stage: scratch, exactly one COPY of `source` from
/// `from` to /ingressd, a numeric non-root user, exec-form entrypoint.
fn check_scratch_stage(stage: &Stage, what: &str, from: &str, source: &str) -> Result<(), String> {
    if stage.base != "scratch" {
        return Err(format!("{what} is FROM {}, not scratch", stage.base));
    }
    for i in &stage.instructions {
        if !["COPY", "USER", "ENTRYPOINT", "EXPOSE", "LABEL", "CMD"].contains(&i.keyword.as_str()) {
            return Err(format!("{what} has a {} instruction; only COPY, USER, ENTRYPOINT, EXPOSE, LABEL, CMD belong there", i.keyword));
        }
    }
    let copies: Vec<&Instruction> = stage.instructions.iter().filter(|i| i.keyword == "COPY").collect();
    let [copy] = copies.as_slice() else {
        return Err(format!("{what} must have exactly one COPY, found {}", copies.len()));
    };
    let expected = format!("--from={from} {source} /ingressd");
    if copy.args != expected {
        return Err(format!("{what} copies {}, expected COPY {expected}", copy.args));
    }
    let user = stage.instructions.iter().rev().find(|i| i.keyword == "USER").ok_or(format!("{what} sets no USER, so it would run as root"))?;
    for id in user.args.split(':') {
        match id.parse::<u32>() {
            Ok(0) => return Err(format!("{what}: USER is root")),
            Ok(_) => {}
            Err(_) => return Err(format!("{what}: USER {} is not numeric; scratch has no /etc/passwd", user.args)),
        }
    }
    let entrypoint = stage.instructions.iter().rev().find(|i| i.keyword == "ENTRYPOINT").ok_or(format!("{what} has no ENTRYPOINT"))?;
    if entrypoint.args != "[\"/ingressd\"]" {
        return Err(format!("{what}: ENTRYPOINT is {}, expected [\"/ingressd\"] (exec form: scratch has no shell)", entrypoint.args));
    }
    Ok(())
}

/// The stages: a musl builder that sets the file capability on what it
/// builds; a stage that sets it on a prebuilt binary from the build context;
/// and two scratch images around one or the other, the musl one last (the
/// default target) and the prebuilt one named `prebuilt`, alike but for
/// their COPY.
fn check(text: &str) -> Result<(), String> {
    let stages = stages(text);
    let [builder, capability, prebuilt, last] = stages.as_slice() else {
        return Err(format!("expected four stages (builder, prebuilt-capability, prebuilt, final), found {}", stages.len()));
    };

    // The builder compiles for musl from the whole workspace.
    let builder_name = builder.name.as_deref().ok_or("the builder stage has no name (FROM ... AS builder)")?;
    let runs: Vec<&str> = builder.instructions.iter().filter(|i| i.keyword == "RUN").map(|i| i.args.as_str()).collect();
    if !runs.iter().any(|r| r.contains("rustup target add x86_64-unknown-linux-musl")) {
        return Err("the builder does not install the x86_64-unknown-linux-musl target".into());
    }
    if !runs.iter().any(|r| r.contains("apt-get install") && r.contains("libcap2-bin")) {
        return Err("the builder does not install libcap2-bin, which has setcap".into());
    }
    let build = runs.iter().position(|r| r.contains("cargo build")).ok_or("the builder never runs cargo build")?;
    for needed in ["--release", "--target x86_64-unknown-linux-musl", "-p ingressd", "--locked"] {
        if !runs[build].contains(needed) {
            return Err(format!("cargo build in the builder lacks {needed}: {}", runs[build]));
        }
    }
    let copied: Vec<String> = builder
        .instructions
        .iter()
        .filter(|i| i.keyword == "COPY")
        .flat_map(|i| {
            let words = words(&i.args);
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
    let musl_binary = format!("{workdir}/target/x86_64-unknown-linux-musl/release/ingressd");
    let setcap = format!("setcap {FILE_CAPABILITY} {musl_binary}");
    match runs.iter().position(|r| *r == setcap) {
        Some(at) if at > build => {}
        Some(_) => return Err("the builder runs setcap before cargo build".into()),
        None => return Err(format!("the builder never runs {setcap}")),
    }

    // The capability for a prebuilt binary: from the build context, by build argument.
    let capability_name = capability.name.as_deref().ok_or("the prebuilt capability stage has no name")?;
    if capability.base != "${SETCAP_IMAGE}" {
        return Err(format!("the prebuilt capability stage is FROM {}, not the SETCAP_IMAGE build argument", capability.base));
    }
    let expected = [
        ("ARG", format!("INGRESSD_BINARY={STATIC_BINARY}")),
        ("COPY", "${INGRESSD_BINARY} /ingressd".to_string()),
        ("RUN", format!("[\"/usr/sbin/setcap\", \"{}\", \"/ingressd\"]", FILE_CAPABILITY)),
    ];
    let found: Vec<(&str, String)> = capability.instructions.iter().map(|i| (i.keyword.as_str(), i.args.clone())).collect();
    if found != expected {
        return Err(format!("the prebuilt capability stage is {found:?}, expected {expected:?}"));
    }

    // The two images.
    if prebuilt.name.as_deref() != Some("prebuilt") {
        return Err(format!("the prebuilt image stage is named {:?}, not prebuilt (its --target)", prebuilt.name));
    }
    check_scratch_stage(prebuilt, "the prebuilt image", capability_name, "/ingressd")?;
    check_scratch_stage(last, "the final stage", builder_name, &musl_binary)?;
    let except_copy = |stage: &Stage| -> Vec<Instruction> { stage.instructions.iter().filter(|i| i.keyword != "COPY").cloned().collect() };
    if except_copy(prebuilt) != except_copy(last) {
        return Err("the prebuilt and the final image differ beyond their COPY".into());
    }
    Ok(())
}

/// `.dockerignore` keeps build output and history out of the context, but
/// not the prebuilt binary the prebuilt target copies.
fn check_dockerignore(text: &str) -> Result<(), String> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    for excluded in ["target", ".git"] {
        if !lines.iter().any(|l| l.trim_end_matches('/') == excluded) {
            return Err(format!(".dockerignore does not exclude {excluded}"));
        }
    }
    let kept = format!("!{STATIC_BINARY}");
    match lines.iter().position(|l| *l == kept) {
        Some(at) if at > lines.iter().position(|l| l.trim_end_matches('/') == "target").unwrap_or(0) => Ok(()),
        _ => Err(format!(".dockerignore must keep {STATIC_BINARY} (a !{STATIC_BINARY} line after target)")),
    }
}

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile.scratch")).expect("Dockerfile.scratch")
}

#[test]
fn the_image_is_a_musl_builder_and_scratch_stages_with_one_capable_file() {
    if let Err(problem) = check(&dockerfile()) {
        panic!("Dockerfile.scratch: {problem}");
    }
}

#[test]
fn the_build_context_leaves_out_build_output_but_not_the_prebuilt_binary() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore")).expect(".dockerignore");
    if let Err(problem) = check_dockerignore(&text) {
        panic!("{problem}");
    }
    for (from, to, expected) in [("\n!target/x86_64-unknown-linux-gnu/release/ingressd", "", "must keep"), ("\n.git\n", "\n", ".git")] {
        assert!(text.contains(from), "mutation anchor {from:?} is not in .dockerignore");
        let problem = check_dockerignore(&text.replacen(from, to, 1)).expect_err("a broken .dockerignore passed");
        assert!(problem.contains(expected), "{problem}");
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
    let final_copy = "COPY --from=builder /src/target/x86_64-unknown-linux-musl/release/ingressd /ingressd";
    let mutations: &[(&str, &str, &str)] = &[
        ("x86_64-unknown-linux-musl -p ingressd", "x86_64-unknown-linux-gnu -p ingressd", "cargo build in the builder lacks --target"),
        ("USER 65532:65532\n\nEXPOSE", "USER 0\n\nEXPOSE", "root"),
        ("USER 65532:65532\n\nEXPOSE", "USER nonroot\n\nEXPOSE", "not numeric"),
        ("USER 65532:65532\n\nEXPOSE", "\n\nEXPOSE", "no USER"),
        ("USER 65532:65532\nEXPOSE", "USER 65533:65532\nEXPOSE", "differ"),
        ("ENTRYPOINT [\"/ingressd\"]\n\n", "ENTRYPOINT /ingressd\n\n", "ENTRYPOINT"),
        ("COPY crates ./crates", "COPY crates/other ./crates/other", "crates/fakeapi"),
        ("COPY vendor ./vendor", "", "vendor/tiny_http"),
        ("COPY benches ./benches", "", "benches/"),
        ("FROM scratch\n", "FROM debian:bookworm-slim\n", "not scratch"),
        (final_copy, &format!("{final_copy}\nCOPY --from=builder /etc/passwd /etc/passwd"), "exactly one COPY"),
        ("EXPOSE 80 443 10254\n\nENTRYPOINT", "RUN true\n\nENTRYPOINT", "RUN instruction"),
        ("RUN setcap cap_net_bind_service=+ep", "RUN setcap cap_net_bind_service,cap_net_admin=+ep", "never runs setcap"),
        ("musl-tools libcap2-bin", "musl-tools", "libcap2-bin"),
        ("\"cap_net_bind_service=+ep\", \"/ingressd\"]", "\"cap_net_bind_service=+eip\", \"/ingressd\"]", "prebuilt capability stage"),
        ("ARG INGRESSD_BINARY=target/x86_64-unknown-linux-gnu/release/ingressd", "ARG INGRESSD_BINARY=ingressd", "prebuilt capability stage"),
        ("FROM scratch AS prebuilt", "FROM scratch AS image", "not prebuilt"),
        ("COPY --from=prebuilt-capability /ingressd /ingressd", "COPY --from=prebuilt-capability /ingressd /ingressd-gnu", "expected COPY"),
        ("FROM ${SETCAP_IMAGE} AS", "FROM debian:bookworm-slim AS", "SETCAP_IMAGE"),
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
