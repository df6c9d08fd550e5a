//! The configurations `wrangler.toml` ships validate: the deployable one, and the `make run` demo's, whose every
//! deployment has a price (configured or built in) and whose keys show a budget and the admin endpoint.

use meridian::config::Config;

fn config_at(path: &[&str]) -> Config {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wrangler.toml")).unwrap();
    let mut v: toml::Value = toml::from_str(&text).unwrap();
    for p in path {
        v = v
            .get(p)
            .unwrap_or_else(|| panic!("wrangler.toml has no {p}"))
            .clone();
    }
    let json = serde_json::to_string(&v).unwrap();
    Config::parse(&json).unwrap_or_else(|e| panic!("{}: {e}", path.join(".")))
}

#[test]
fn the_deployable_configuration_validates() {
    config_at(&["vars", "MERIDIAN_CONFIG"]);
}

#[test]
fn the_demo_prices_every_deployment_and_has_a_budget_and_an_admin_key() {
    let c = config_at(&["env", "demo", "vars", "MERIDIAN_CONFIG"]);
    for (name, m) in &c.models {
        for d in m.deployments() {
            assert!(d.price.is_some(), "models.{name}: {} is unpriced", d.id());
        }
    }
    let budget = c.keys.iter().find(|k| k.name == "demo-budget").unwrap();
    assert!(budget.budget.as_ref().is_some_and(|b| b.per_day.is_some()));
    assert_eq!(c.admin_keys.len(), 1);
    assert_eq!(c.admin_keys[0].name, "demo-admin");
}
