use super::*;

/// The shipped defaults with these listen addresses.
fn listening(server: &str, metrics: &str) -> Settings {
    let mut settings: Settings =
        toml::from_str(include_str!("../config/default.toml")).expect("default.toml parses");
    settings.server.listen = server.into();
    settings.metrics.listen = metrics.into();
    settings
}

fn source(settings: Settings) -> SettingsSource {
    Box::new(move || Ok(settings.clone()))
}

/// An address that does not resolve now stands for a name server's passing failure (a port
/// out of range fails without asking one): the reload that keeps it is not refused for it,
/// the one that changes an address to it is.
#[test]
fn a_reload_resolves_only_the_listen_addresses_it_changes() {
    let unresolvable = "localhost:80800";
    let running = listening(unresolvable, unresolvable);

    let unchanged = refusing_what_a_start_would(&running, source(running.clone()));
    assert!(
        unchanged().is_ok(),
        "the running addresses were resolved again"
    );

    let started = listening("127.0.0.1:8080", "");
    let edits = [
        ("server.listen", listening(unresolvable, "")),
        ("metrics.listen", listening("127.0.0.1:8080", unresolvable)),
    ];
    for (setting, edited) in edits {
        let reload = refusing_what_a_start_would(&started, source(edited));
        let refused = reload().expect_err(setting).to_string();
        assert!(refused.contains(setting), "{refused}");
    }

    // A metrics listener the start did not bind (metrics off) is not one the server has.
    let mut metrics_off = listening("127.0.0.1:8080", unresolvable);
    metrics_off.metrics.enabled = false;
    let mut metrics_on = metrics_off.clone();
    metrics_on.metrics.enabled = true;
    let reload = refusing_what_a_start_would(&metrics_off, source(metrics_on));
    let refused = reload().expect_err("metrics turned on").to_string();
    assert!(refused.contains("metrics.listen"), "{refused}");
}
