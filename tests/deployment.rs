//! The deployment files agree with the program: docker-compose.yml parses, its pipeline service's
//! `FULFILMENT__` variables load through the real configuration loader, and the Dockerfile builds
//! the binary the compose file runs.

use std::collections::HashMap;
use std::path::PathBuf;

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
