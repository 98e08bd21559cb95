//! The deployment files agree with the program: docker-compose.yml, the Dockerfile and every
//! file under deploy/ (Kubernetes manifests, KEDA scaling, systemd units, Prometheus rules and
//! scrape configuration, the Grafana dashboard).
//!
//! - every YAML file parses, and the dashboard is JSON;
//! - every `FULFILMENT__` variable they set loads through the real configuration loader, and the
//!   commands they run parse as the real command line, covering each stage once;
//! - every metric (and label) the alerts and the dashboard use is one the program exports;
//! - health probes ask paths the real metrics listener serves, on the port `metrics.listen`
//!   gives; KEDA watches the queues the scaled processes consume;
//! - `promtool` accepts the rules, their unit tests and the scrape configuration;
//! - the Dockerfile copies every path dependency and checks health with `fulfilment health`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Duration;

use clap::Parser;
use fulfilment::cli::{Cli, Command};
use fulfilment::domain::StageName;
use fulfilment::messaging::Topology;
use fulfilment::settings::{EnvVars, Settings};
use yaml_rust2::{Yaml, YamlLoader};

fn compose() -> Yaml {
    let text = std::fs::read_to_string("docker-compose.yml").expect("docker-compose.yml");
    YamlLoader::load_from_str(&text)
        .expect("docker-compose.yml is YAML")
        .remove(0)
}

#[test]
fn compose_environment_loads_through_the_config_loader() {
    let compose = compose();
    let service = &compose["services"]["fulfilment"];
    let env = service["environment"]
        .as_hash()
        .expect("fulfilment has an environment map");
    let vars: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(vars.keys().all(|k| k.starts_with("FULFILMENT__")));
    let settings = Settings::load_from(None, PathBuf::from("config"), EnvVars::Given(vars))
        .expect("the compose environment is a valid configuration");
    assert!(settings.amqp.url.expose().contains("@rabbitmq:5672"));
    assert!(settings.database.url.expose().contains("@postgres:5432"));
    assert!(
        settings.stages.seller.seller().is_some(),
        "documents name a seller"
    );
}

#[test]
fn compose_services_have_images_health_checks_and_ordering() {
    let compose = compose();
    for name in ["rabbitmq", "postgres"] {
        let service = &compose["services"][name];
        assert!(service["image"].as_str().is_some(), "{name} has an image");
        assert!(
            !service["healthcheck"]["test"].is_badvalue(),
            "{name} has a health check"
        );
    }
    let pipeline = &compose["services"]["fulfilment"];
    assert_eq!(pipeline["build"].as_str(), Some("."));
    for dependency in ["rabbitmq", "postgres"] {
        assert_eq!(
            pipeline["depends_on"][dependency]["condition"].as_str(),
            Some("service_healthy")
        );
    }
    let credentials = &compose["services"]["rabbitmq"]["environment"];
    let user = credentials["RABBITMQ_DEFAULT_USER"].as_str().unwrap();
    let url = pipeline["environment"]["FULFILMENT__AMQP__URL"]
        .as_str()
        .unwrap();
    assert!(
        url.starts_with(&format!("amqp://{user}:")),
        "the pipeline uses the broker's user"
    );
}

#[test]
fn dockerfile_builds_and_runs_the_binary() {
    let dockerfile = std::fs::read_to_string("Dockerfile").expect("Dockerfile");
    assert!(dockerfile.contains("cargo build --release --locked"));
    assert!(
        dockerfile.contains("COPY migrations"),
        "migrations are embedded at build time"
    );
    assert!(dockerfile.contains("ENTRYPOINT [\"fulfilment\"]"));
    assert!(
        dockerfile.contains("COPY examples /app/examples"),
        "the README seeds the sample catalogue inside the container"
    );
}

#[test]
fn dockerfile_copies_every_path_dependency_and_checks_health() {
    let dockerfile = std::fs::read_to_string("Dockerfile").expect("Dockerfile");
    let manifest: toml::Table = std::fs::read_to_string("Cargo.toml")
        .expect("Cargo.toml")
        .parse()
        .expect("Cargo.toml is TOML");
    let paths = path_dependencies(&manifest);
    assert!(
        paths.contains("vendor/amq-protocol-types"),
        "the patched crate is found: {paths:?}"
    );
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|line| line.trim().strip_prefix("COPY "))
        .filter(|args| !args.starts_with("--from"))
        .flat_map(|args| {
            let words: Vec<&str> = args.split_whitespace().collect();
            words[..words.len().saturating_sub(1)].to_vec()
        })
        .map(|source| source.trim_start_matches("./").trim_end_matches('/'))
        .collect();
    for path in &paths {
        assert!(
            copied
                .iter()
                .any(|source| path == source || path.starts_with(&format!("{source}/"))),
            "the Dockerfile's build stage copies {path} (copied: {copied:?})"
        );
    }
    let healthcheck = dockerfile
        .split("HEALTHCHECK")
        .nth(1)
        .expect("the Dockerfile has a HEALTHCHECK");
    assert!(
        healthcheck.contains("CMD [\"fulfilment\", \"health\"]"),
        "the HEALTHCHECK runs `fulfilment health`"
    );
    assert!(matches!(
        parse_command(&["health"]),
        Command::Health { address: None }
    ));
    let compose = compose();
    let test = compose["services"]["fulfilment"]["healthcheck"]["test"]
        .as_vec()
        .expect("the fulfilment service has a health check");
    let test: Vec<&str> = test.iter().filter_map(Yaml::as_str).collect();
    assert_eq!(test, ["CMD", "fulfilment", "health"]);
}

/// Every `path` of a dependency, patch or workspace member, other than the package itself.
fn path_dependencies(manifest: &toml::Table) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut tables: Vec<&toml::Table> = Vec::new();
    for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
        tables.extend(manifest.get(key).and_then(toml::Value::as_table));
    }
    if let Some(patches) = manifest.get("patch").and_then(toml::Value::as_table) {
        tables.extend(patches.values().filter_map(toml::Value::as_table));
    }
    for table in tables {
        for dependency in table.values() {
            if let Some(path) = dependency.get("path").and_then(toml::Value::as_str) {
                paths.insert(path.to_owned());
            }
        }
    }
    let members = manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(toml::Value::as_array);
    for member in members.into_iter().flatten() {
        paths.extend(member.as_str().map(str::to_owned));
    }
    paths.retain(|p| p != "." && !p.is_empty());
    paths
}

// ---- deploy/ ----

/// Every file under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The documents of a YAML file.
fn yaml_documents(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    )
}

#[test]
fn every_yaml_file_under_deploy_parses() {
    let files: Vec<PathBuf> = files_under(Path::new("deploy"))
        .into_iter()
        .filter(|p| is_yaml(p))
        .collect();
    assert!(files.len() >= 10, "deploy/ holds its YAML files: {files:?}");
    for path in &files {
        let documents = yaml_documents(path);
        assert!(!documents.is_empty(), "{} has a document", path.display());
        for document in &documents {
            assert!(
                document.as_hash().is_some(),
                "every document of {} is a mapping",
                path.display()
            );
        }
    }
    let dashboard = dashboard();
    assert_eq!(dashboard["schemaVersion"], 39);
}

#[test]
fn the_deploy_readme_lists_every_file() {
    let readme = std::fs::read_to_string("deploy/README.md").expect("deploy/README.md");
    for path in files_under(Path::new("deploy")) {
        let relative = path.strip_prefix("deploy").unwrap().to_str().unwrap();
        if relative == "README.md" {
            continue;
        }
        let named = readme.contains(relative)
            || path
                .parent()
                .and_then(|dir| dir.strip_prefix("deploy").ok())
                .and_then(Path::to_str)
                .is_some_and(|dir| !dir.is_empty() && readme.contains(&format!("{dir}/")));
        assert!(named, "deploy/README.md names {relative} or its directory");
    }
}

/// One Kubernetes object, with the file it is in.
struct Object {
    file: PathBuf,
    doc: Yaml,
}

impl Object {
    fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.doc["metadata"]["name"].as_str().unwrap_or_default()
    }
}

fn kubernetes() -> Vec<Object> {
    let objects: Vec<Object> = files_under(Path::new("deploy/kubernetes"))
        .into_iter()
        .filter(|p| is_yaml(p))
        .flat_map(|file| {
            yaml_documents(&file).into_iter().map(move |doc| Object {
                file: file.clone(),
                doc,
            })
        })
        .collect();
    for object in &objects {
        let where_ = object.file.display();
        assert!(
            !object.kind().is_empty(),
            "an object in {where_} has a kind"
        );
        if object.kind() != "Kustomization" {
            assert!(
                !object.name().is_empty(),
                "a {} in {where_} has a name",
                object.kind()
            );
            assert!(
                object.doc["metadata"]["namespace"].is_badvalue(),
                "{} {} names no namespace: the manifests go in any",
                object.kind(),
                object.name()
            );
        }
    }
    objects
}

fn find<'a>(objects: &'a [Object], kind: &str, name: &str) -> &'a Object {
    objects
        .iter()
        .find(|o| o.kind() == kind && o.name() == name)
        .unwrap_or_else(|| panic!("the manifests define {kind} {name}"))
}

/// A ConfigMap's `data` or a Secret's `stringData`, as strings.
fn string_map(object: &Object) -> BTreeMap<String, String> {
    let field = match object.kind() {
        "Secret" => "stringData",
        _ => "data",
    };
    object.doc[field]
        .as_hash()
        .unwrap_or_else(|| panic!("{} {} has {field}", object.kind(), object.name()))
        .iter()
        .map(|(k, v)| {
            let value = v
                .as_str()
                .unwrap_or_else(|| panic!("{} {}: {k:?} is quoted", object.kind(), object.name()));
            (k.as_str().unwrap().to_owned(), value.to_owned())
        })
        .collect()
}

/// A workload's single container and the pod spec around it.
struct Workload<'a> {
    object: &'a Object,
    pod: &'a Yaml,
    container: &'a Yaml,
}

fn workloads(objects: &[Object]) -> Vec<Workload<'_>> {
    objects
        .iter()
        .filter(|o| matches!(o.kind(), "Deployment" | "Job"))
        .map(|object| {
            let pod = &object.doc["spec"]["template"]["spec"];
            let containers = pod["containers"].as_vec().expect("containers");
            assert_eq!(containers.len(), 1, "{} runs one container", object.name());
            Workload {
                object,
                pod,
                container: &containers[0],
            }
        })
        .collect()
}

/// A workload's settings, loaded as the program loads them from its environment (ConfigMaps,
/// Secrets, `env`, and the environment file mounted where FULFILMENT_CONFIG_DIR says).
fn workload_settings(objects: &[Object], workload: &Workload) -> Settings {
    let name = workload.object.name();
    let mut env = BTreeMap::new();
    for source in workload.container["envFrom"].as_vec().into_iter().flatten() {
        let (kind, reference) = match (&source["configMapRef"], &source["secretRef"]) {
            (Yaml::BadValue, secret) => ("Secret", secret),
            (config_map, _) => ("ConfigMap", config_map),
        };
        let referenced = reference["name"]
            .as_str()
            .expect("envFrom names its source");
        env.extend(string_map(find(objects, kind, referenced)));
    }
    for var in workload.container["env"].as_vec().into_iter().flatten() {
        let value = var["value"]
            .as_str()
            .expect("env values are given as strings");
        env.insert(var["name"].as_str().unwrap().to_owned(), value.to_owned());
    }
    for key in env.keys() {
        assert!(
            key.starts_with("FULFILMENT__")
                || key == "FULFILMENT_ENV"
                || key == "FULFILMENT_CONFIG_DIR",
            "{name}: {key} is a variable the program reads"
        );
    }
    let config = env.get("FULFILMENT_ENV").map(|environment| {
        let dir = env
            .get("FULFILMENT_CONFIG_DIR")
            .expect("FULFILMENT_ENV comes with FULFILMENT_CONFIG_DIR");
        let mount = workload.container["volumeMounts"]
            .as_vec()
            .into_iter()
            .flatten()
            .find(|m| m["mountPath"].as_str() == Some(dir))
            .unwrap_or_else(|| panic!("{name} mounts {dir}"));
        let volume = workload.pod["volumes"]
            .as_vec()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == mount["name"])
            .expect("the mounted volume");
        let secret = volume["secret"]["secretName"].as_str().expect("a Secret");
        let files = string_map(find(objects, "Secret", secret));
        let file = format!("{environment}.toml");
        let text = files
            .get(&file)
            .unwrap_or_else(|| panic!("Secret {secret} holds {file}"));
        (environment.clone(), text.clone())
    });
    load_settings(name, &env, config)
}

/// Loads `env`'s FULFILMENT__ variables over the defaults and, when given, an environment
/// file's text.
fn load_settings(
    what: &str,
    env: &BTreeMap<String, String>,
    environment_file: Option<(String, String)>,
) -> Settings {
    let vars: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("FULFILMENT__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let dir = std::env::temp_dir().join(format!("fulfilment-deploy-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let environment = environment_file.map(|(name, text)| {
        std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
        name
    });
    let loaded = Settings::load_from(environment.as_deref(), dir.clone(), EnvVars::Given(vars));
    std::fs::remove_dir_all(&dir).unwrap();
    loaded.unwrap_or_else(|e| panic!("{what}'s configuration loads: {e}"))
}

/// The command a container runs (its ENTRYPOINT is `fulfilment`).
fn container_command(workload: &Workload) -> Command {
    let args: Vec<&str> = workload.container["args"]
        .as_vec()
        .expect("the container gives its arguments")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        workload.container["command"].is_badvalue(),
        "{} keeps the image's entrypoint",
        workload.object.name()
    );
    parse_command(&args)
}

fn parse_command(args: &[&str]) -> Command {
    let argv = std::iter::once("fulfilment").chain(args.iter().copied());
    Cli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("`fulfilment {}` parses: {e}", args.join(" ")))
        .command
}

/// The stages a `run` runs and whether it runs the relay; `None` for other commands.
fn stage_group(command: &Command) -> Option<(Vec<StageName>, bool)> {
    match command {
        Command::Run {
            stages,
            no_relay,
            no_api,
        } => {
            assert!(*no_api, "stage groups leave the API to `serve`");
            assert!(!stages.is_empty(), "a stage group names its stages");
            Some((stages.clone(), !no_relay))
        }
        _ => None,
    }
}

/// Every stage is run by exactly one group, and some group runs the relay and scheduler.
fn assert_groups_cover_the_pipeline(what: &str, groups: &[(Vec<StageName>, bool)]) {
    let mut stages: Vec<StageName> = groups.iter().flat_map(|(s, _)| s.clone()).collect();
    stages.sort();
    assert_eq!(
        stages,
        StageName::ALL,
        "{what}: each stage runs in one group"
    );
    assert!(
        groups.iter().any(|(_, relay)| *relay),
        "{what}: some group runs the outbox relay and the scheduler"
    );
}

fn port_of(listen: &str) -> u16 {
    listen
        .parse::<std::net::SocketAddr>()
        .unwrap_or_else(|e| panic!("{listen:?} is an address: {e}"))
        .port()
}

#[test]
fn kubernetes_environment_loads_and_stage_groups_cover_the_pipeline() {
    let objects = kubernetes();
    let secret = string_map(find(&objects, "Secret", "fulfilment"));
    for key in ["FULFILMENT__AMQP__URL", "FULFILMENT__DATABASE__URL"] {
        assert!(secret.contains_key(key), "{key} is kept in the Secret");
    }
    let config = string_map(find(&objects, "ConfigMap", "fulfilment"));
    assert!(
        !config.keys().any(|k| k.ends_with("__URL")),
        "no URL with a password in the ConfigMap"
    );
    let workloads = workloads(&objects);
    assert!(
        workloads.len() >= 5,
        "the API, three groups and the migration"
    );
    let mut groups = Vec::new();
    let mut serves = 0;
    for workload in &workloads {
        let settings = workload_settings(&objects, workload);
        let command = container_command(workload);
        match (workload.object.kind(), &command) {
            ("Job", Command::Migrate) => {}
            ("Deployment", Command::Serve) => {
                serves += 1;
                assert!(
                    settings.review.listen.starts_with("0.0.0.0:"),
                    "the API listens beyond the pod's loopback"
                );
                let service = find(&objects, "Service", workload.object.name());
                let target = service.doc["spec"]["ports"][0]["targetPort"].as_str();
                let port = container_port(workload, target.expect("a named target port"));
                assert_eq!(port, port_of(&settings.review.listen));
            }
            ("Deployment", run) => {
                let group = stage_group(run).expect("a Deployment runs `run` or `serve`");
                groups.push((workload.object.name().to_owned(), group, settings));
            }
            (kind, command) => panic!("{kind} runs {command:?}"),
        }
    }
    assert_eq!(serves, 1, "one Deployment serves the API");
    let covered: Vec<(Vec<StageName>, bool)> = groups.iter().map(|(_, g, _)| g.clone()).collect();
    assert_groups_cover_the_pipeline("Kubernetes", &covered);
    // Each stage group is scaled by KEDA on its own stages' queues.
    for (deployment, (stages, relay), settings) in &groups {
        let scaled = objects
            .iter()
            .find(|o| {
                o.kind() == "ScaledObject"
                    && o.doc["spec"]["scaleTargetRef"]["name"].as_str() == Some(deployment)
            })
            .unwrap_or_else(|| panic!("a ScaledObject scales {deployment}"));
        let triggers = scaled.doc["spec"]["triggers"].as_vec().expect("triggers");
        let topology = Topology::of(&settings.amqp);
        let mut queues: Vec<String> = stages.iter().map(|s| topology.stage_queue(*s)).collect();
        queues.sort();
        let mut watched = Vec::new();
        for trigger in triggers {
            assert_eq!(trigger["type"].as_str(), Some("rabbitmq"));
            assert_eq!(trigger["metadata"]["mode"].as_str(), Some("QueueLength"));
            let value = trigger["metadata"]["value"]
                .as_str()
                .expect("a quoted value");
            assert!(value.parse::<f64>().is_ok_and(|v| v > 0.0));
            watched.push(
                trigger["metadata"]["queueName"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            let auth = trigger["authenticationRef"]["name"].as_str().unwrap();
            let auth = find(&objects, "TriggerAuthentication", auth);
            for reference in auth.doc["spec"]["secretTargetRef"].as_vec().unwrap() {
                let secret = find(&objects, "Secret", reference["name"].as_str().unwrap());
                let key = reference["key"].as_str().unwrap();
                assert!(
                    string_map(secret).contains_key(key),
                    "the Secret holds {key}"
                );
            }
        }
        watched.sort();
        assert_eq!(watched, queues, "{deployment} scales on its stages' queues");
        let min = scaled.doc["spec"]["minReplicaCount"].as_i64().unwrap_or(0);
        if *relay {
            assert!(
                min >= 1,
                "{deployment} runs the relay: it never scales to zero"
            );
        }
    }
}

/// The number of a container's port named `name`.
fn container_port(workload: &Workload, name: &str) -> u16 {
    let ports = workload.container["ports"].as_vec().expect("ports");
    let port = ports
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{} has a port {name}", workload.object.name()));
    u16::try_from(port["containerPort"].as_i64().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_ask_what_the_metrics_listener_serves_on_its_port() {
    // The listener every process serves on `metrics.listen`, with a database that does not
    // answer: live, and not ready.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy("postgres://nobody@127.0.0.1:1/nothing")
        .unwrap();
    let health = fulfilment::health::Health::new(pool, None);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(fulfilment::metrics::serve(
        listener,
        health,
        shutdown.clone(),
    ));
    let http = reqwest::Client::new();
    let status = |path: String| {
        let http = http.clone();
        async move {
            http.get(format!("http://{address}{path}"))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        status("/no-such-path".into()).await,
        404,
        "the check can fail"
    );

    let objects = kubernetes();
    let mut probes = 0;
    for workload in workloads(&objects) {
        if workload.object.kind() != "Deployment" {
            continue;
        }
        let name = workload.object.name();
        let settings = workload_settings(&objects, &workload);
        let metrics_port = port_of(&settings.metrics.listen);
        assert!(
            settings.metrics.listen.starts_with("0.0.0.0:"),
            "{name}: the kubelet reaches metrics.listen"
        );
        for (probe, expected) in [
            ("startupProbe", "/health/live"),
            ("livenessProbe", "/health/live"),
            ("readinessProbe", "/health/ready"),
        ] {
            let get = &workload.container[probe]["httpGet"];
            let path = get["path"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has an HTTP {probe}"));
            assert_eq!(path, expected, "{name}'s {probe}");
            let port = match &get["port"] {
                Yaml::String(named) => container_port(&workload, named),
                Yaml::Integer(n) => u16::try_from(*n).unwrap(),
                other => panic!("{name}'s {probe} port {other:?}"),
            };
            assert_eq!(port, metrics_port, "{name}'s {probe} asks metrics.listen");
            let got = status(path.to_owned()).await;
            match expected {
                "/health/live" => assert_eq!(got, 200, "{path} answers while the process runs"),
                _ => assert_eq!(got, 503, "{path} answers 503 without a database"),
            }
            probes += 1;
        }
    }
    assert!(probes >= 12, "every Deployment has its three probes");
    assert_eq!(status("/metrics".into()).await, 200);
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// `KEY=VALUE` lines of an environment file (no quoting: systemd takes the rest of the line).
fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: {line:?} is KEY=VALUE", path.display()));
            assert!(
                !value.starts_with('"'),
                "{}: {key} is unquoted, as the walkthrough writes it",
                path.display()
            );
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn systemd_instances_load_and_match_the_scrape_configuration() {
    let shared = env_file(Path::new("deploy/systemd/fulfilment.env.example"));
    assert!(shared.keys().all(|k| k.starts_with("FULFILMENT__")));
    let people = std::fs::read_to_string("deploy/systemd/production.toml.example").unwrap();
    let mut groups = Vec::new();
    let mut worker_ports = BTreeSet::new();
    let mut api_port = None;
    let mut metrics_ports = BTreeSet::new();
    let instances: Vec<PathBuf> = files_under(Path::new("deploy/systemd/instances"));
    assert_eq!(instances.len(), 4, "the API and three stage groups");
    for path in &instances {
        let own = env_file(path);
        let mut env = shared.clone();
        env.extend(own.clone());
        for key in own.keys() {
            assert!(
                key.starts_with("FULFILMENT__")
                    || key == "FULFILMENT_ARGS"
                    || key == "FULFILMENT_ENV",
                "{}: {key} is a variable the unit or the program reads",
                path.display()
            );
        }
        let environment = env
            .get("FULFILMENT_ENV")
            .map(|name| (name.clone(), people.clone()));
        let what = path.display().to_string();
        let settings = load_settings(&what, &env, environment);
        let args: Vec<&str> = env["FULFILMENT_ARGS"].split_whitespace().collect();
        let command = parse_command(&args);
        let metrics = port_of(&settings.metrics.listen);
        assert!(metrics_ports.insert(metrics), "{what}: a port of its own");
        match &command {
            Command::Serve => api_port = Some(port_of(&settings.review.listen)),
            run => {
                groups.push(stage_group(run).expect("`run` or `serve`"));
                worker_ports.insert(metrics);
            }
        }
    }
    assert_groups_cover_the_pipeline("systemd", &groups);
    let scrape = &yaml_documents(Path::new("deploy/prometheus/prometheus.yml"))[0];
    let job = |name: &str| -> BTreeSet<u16> {
        let job = scrape["scrape_configs"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|j| j["job_name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("prometheus.yml has the job {name}"));
        job["static_configs"][0]["targets"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|t| {
                t.as_str()
                    .unwrap()
                    .rsplit_once(':')
                    .unwrap()
                    .1
                    .parse()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(job("fulfilment-workers"), worker_ports);
    assert_eq!(job("fulfilment-api"), BTreeSet::from([api_port.unwrap()]));
}

#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string("deploy/systemd/fulfilment@.service").unwrap();
    for line in [
        "ExecStart=/usr/local/bin/fulfilment $FULFILMENT_ARGS",
        "EnvironmentFile=/etc/fulfilment/env",
        "EnvironmentFile=/etc/fulfilment/%i.env",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit has {line}");
    }
    let stop = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|s| s.trim_end_matches('s').parse::<u64>().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(stop > 20, "in-flight deliveries have their 20 s to finish");
    if Process::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: the unit's syntax is not verified");
        return;
    }
    // Verified as an instance, with the binary where it is built.
    let dir = std::env::temp_dir().join(format!("fulfilment-unit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let instance = dir.join("fulfilment@verify-prepare.service");
    std::fs::write(
        &instance,
        unit.replace(
            "/usr/local/bin/fulfilment",
            env!("CARGO_BIN_EXE_fulfilment"),
        ),
    )
    .unwrap();
    let output = Process::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&instance)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "{stderr}"
    );
}

// ---- metrics, alerts and the dashboard ----

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string("deploy/grafana/fulfilment.json").unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every metric this program exports, with its label names: counters and histograms recorded
/// once each, and the overview's gauges, rendered by the program's own exporter.
fn exported_metrics() -> BTreeMap<String, BTreeSet<String>> {
    use fulfilment::db::overview::{CaseCount, OutboxBacklog, StateCount, TimerBacklog};
    use fulfilment::metrics;
    let second = Duration::from_secs(1);
    // Recorded before the recorder is installed, a sample would go nowhere.
    metrics::install();
    metrics::statements(1);
    metrics::committed();
    metrics::delivery(StageName::Verify, "handled");
    metrics::case_opened("verify", "out_of_stock");
    metrics::published("relay", 1, second);
    metrics::publish_failed();
    metrics::timer_fired("deemed_acceptance");
    metrics::batch(StageName::Verify, 1, second);
    metrics::order_completed(second);
    let at = chrono::Utc::now();
    let overview = fulfilment::overview::Overview {
        at,
        orders: vec![StateCount {
            state: "placed".into(),
            orders: 1,
            oldest_since: at,
        }],
        open_cases: vec![CaseCount {
            reason: "out_of_stock".into(),
            required_role: "customer_service".into(),
            cases: 1,
            oldest_opened_at: at,
        }],
        outbox: OutboxBacklog {
            unsent: 0,
            oldest_unsent_at: None,
        },
        timers: TimerBacklog {
            pending: 0,
            overdue: 0,
            next_due_at: None,
        },
        queues: vec![fulfilment::messaging::QueueCounts {
            queue: "fulfilment.verify".into(),
            ready: 0,
            consumers: 1,
        }],
        broker_error: None,
    };
    let text = overview.prometheus();
    let mut exported: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap();
        let labels = exported.entry(line[..end].to_owned()).or_default();
        if let Some(inner) = line[end..].strip_prefix('{') {
            let inner = &inner[..inner.rfind('}').unwrap()];
            for (name, _) in matchers(inner) {
                labels.insert(name);
            }
        }
    }
    // A histogram's base name (in `# TYPE`) has its series' labels, `le` aside.
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            if kind == "histogram" {
                let mut labels = exported[&format!("{name}_bucket")].clone();
                labels.remove("le");
                exported.insert(name.to_owned(), labels);
            }
        }
    }
    exported
}

/// The label names and values of a label list such as `a="x",b!~"y"`.
fn matchers(inner: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or_else(|| panic!("a label matcher in {inner:?}"));
        let name = rest[..name_end].to_owned();
        rest = rest[name_end..].trim_start();
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .unwrap_or_else(|| panic!("an operator after {name} in {inner:?}"));
        rest = rest[op.len()..].trim_start();
        assert!(rest.starts_with('"'), "a quoted value in {inner:?}");
        let mut value = String::new();
        let mut chars = rest[1..].char_indices();
        let close = loop {
            match chars.next() {
                Some((_, '\\')) => value.extend(chars.next().map(|(_, c)| c)),
                Some((i, '"')) => break i + 1,
                Some((_, c)) => value.push(c),
                None => panic!("an unterminated value in {inner:?}"),
            }
        };
        out.push((name, value));
        rest = rest[close + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    out
}

/// Every `fulfilment_*` selector in a PromQL expression, with its label names.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while let Some(found) = expr[i..].find("fulfilment_") {
        let start = i + found;
        let mut end = start;
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        i = end;
        if start > 0 && (ident(bytes[start - 1]) || bytes[start - 1] == b'"') {
            continue;
        }
        let name = expr[start..end].to_owned();
        let after = expr[end..].trim_start();
        let labels = match after.strip_prefix('{') {
            Some(inner) => {
                let close = inner.find('}').expect("a closed selector");
                matchers(&inner[..close])
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect()
            }
            None => Vec::new(),
        };
        out.push((name, labels));
    }
    out
}

/// The rules of alerts.yml.
fn alert_rules() -> Vec<Yaml> {
    let alerts = &yaml_documents(Path::new("deploy/prometheus/alerts.yml"))[0];
    alerts["groups"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_vec().unwrap().clone())
        .collect()
}

fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut values = vec![dashboard];
    while let Some(value) = values.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(expr) = map.get("expr").and_then(|e| e.as_str()) {
                    exprs.push(expr.to_owned());
                }
                values.extend(map.values());
            }
            serde_json::Value::Array(items) => values.extend(items),
            _ => {}
        }
    }
    exprs
}

#[test]
fn alerts_and_the_dashboard_use_only_exported_metrics_and_labels() {
    let exported = exported_metrics();
    for name in [
        "fulfilment_deliveries_total",
        "fulfilment_batch_seconds_bucket",
        "fulfilment_queue_ready",
        "fulfilment_broker_up",
    ] {
        assert!(exported.contains_key(name), "{name} in {exported:?}");
    }
    let mut exprs: Vec<(String, String)> = alert_rules()
        .iter()
        .map(|r| {
            let alert = r["alert"].as_str().unwrap().to_owned();
            (alert, r["expr"].as_str().unwrap().to_owned())
        })
        .collect();
    let dashboard = dashboard();
    let panels = dashboard_exprs(&dashboard);
    assert!(panels.len() >= 15, "the dashboard's queries: {panels:?}");
    exprs.extend(panels.into_iter().map(|e| ("the dashboard".to_owned(), e)));
    let mut used = BTreeSet::new();
    for (whose, expr) in &exprs {
        for (name, labels) in selectors(expr) {
            let known = exported.get(&name).unwrap_or_else(|| {
                panic!("{whose} uses {name}, which the program does not export")
            });
            for label in labels {
                assert!(
                    known.contains(&label) || label == "le",
                    "{whose}: {name} has no label {label} (it has {known:?})"
                );
            }
            used.insert(name);
        }
    }
    let bases: BTreeSet<String> = used
        .iter()
        .map(|n| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|b| exported.contains_key(*b)));
            base.unwrap_or(n).to_owned()
        })
        .collect();
    for wanted in [
        "fulfilment_deliveries_total",
        "fulfilment_batch_seconds",
        "fulfilment_order_seconds",
        "fulfilment_outbox_lag_seconds",
        "fulfilment_queue_ready",
        "fulfilment_review_cases_open",
        "fulfilment_orders",
        "fulfilment_timers_overdue",
        "fulfilment_publish_failures_total",
    ] {
        assert!(bases.contains(wanted), "{wanted} is watched");
    }
    assert!(
        selectors(r#"x{a="1"} + fulfilment_nope{stage="v"}"#)
            .iter()
            .any(|(n, l)| n == "fulfilment_nope" && l == &["stage"]),
        "the selector reader finds names and labels"
    );
    let datasource = &dashboard["templating"]["list"][0];
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
}

/// A heading's anchor as GitHub makes it.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_has_a_duration_severity_and_a_runbook_that_exists() {
    let operations = std::fs::read_to_string("docs/operations.md").unwrap();
    let anchors: BTreeSet<String> = operations
        .lines()
        .filter_map(|l| {
            l.trim_start_matches('#')
                .strip_prefix(' ')
                .filter(|_| l.starts_with('#'))
        })
        .map(anchor)
        .collect();
    assert!(anchors.contains("the-pipelines-processes"), "{anchors:?}");
    let rules = alert_rules();
    assert!(rules.len() >= 10);
    for rule in &rules {
        let alert = rule["alert"].as_str().expect("alerting rules only");
        assert!(rule["for"].as_str().is_some(), "{alert} has a `for`");
        assert!(
            matches!(
                rule["labels"]["severity"].as_str(),
                Some("critical" | "warning")
            ),
            "{alert} has a severity"
        );
        for annotation in ["summary", "description"] {
            assert!(
                rule["annotations"][annotation].as_str().is_some(),
                "{alert} has a {annotation}"
            );
        }
        let runbook = rule["annotations"]["runbook"].as_str().unwrap();
        let section = runbook
            .strip_prefix("docs/operations.md#")
            .unwrap_or_else(|| panic!("{alert}'s runbook is in docs/operations.md"));
        assert!(anchors.contains(section), "{alert}: no section #{section}");
    }
}

/// `promtool` from Debian's `prometheus` package (scripts/test installs it).
fn promtool(args: &[&str]) {
    let output = Process::new("promtool")
        .args(args)
        .current_dir("deploy/prometheus")
        .output()
        .expect("promtool is installed (apt-get install prometheus; scripts/test does)");
    assert!(
        output.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules_their_tests_and_the_scrape_configuration() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts.test.yml"]);
    // Syntax only: the token file it names exists on the Prometheus host, not here.
    promtool(&["check", "config", "--syntax-only", "prometheus.yml"]);
}
