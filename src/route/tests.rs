use super::*;
use crate::sinks::{amqp, file, kafka};

fn input<'a>(
    registry: &'a str,
    noun: &'a str,
    repo: Option<&'a str>,
    tag: Option<&'a str>,
) -> (String, RouteInput<'a>) {
    let ty = format!("dev.regbridge.{noun}.pushed.v1");
    (ty, RouteInput { endpoint: registry, registry, ty: "", noun, verb: "pushed", repository: repo, tag })
}

fn route(
    r: &Router,
    registry: &str,
    noun: &str,
    repo: Option<&str>,
    tag: Option<&str>,
) -> Vec<(&'static str, Target)> {
    let (ty, mut i) = input(registry, noun, repo, tag);
    i.ty = &ty;
    r.route(&i)
}

fn sinks() -> Vec<&'static SinkSpec> {
    vec![&kafka::SPEC, &amqp::SPEC, &file::SPEC]
}

#[test]
fn defaults_send_everything_everywhere() {
    let r = Router::defaults(&sinks());
    let t = route(&r, "harbor", "artifact", Some("library/nginx"), Some("1.0"));
    assert_eq!(t.len(), 3);
    assert_eq!(
        t[0],
        ("kafka", Target { name: "registry-events".into(), key: None, mode: ContentMode::Binary })
    );
    assert_eq!(t[1].1.key.as_deref(), Some("harbor.artifact.pushed"));
    assert_eq!(t[2].0, "file");

    // A global default mode applies where a rule does not choose one.
    let r = Router::from_yaml(RULES, &sinks()).unwrap().with_default_mode(ContentMode::Structured);
    let t = route(&r, "harbor", "artifact", Some("library/nginx"), Some("v1.25"));
    assert!(t.iter().all(|(_, t)| t.mode == ContentMode::Structured));
}

const RULES: &str = r#"
routes:
  - name: pushes-to-mirror
    match: { registry: [harbor, root], type: "dev.regbridge.artifact.*", repository: "library/*", tag: "^v[0-9]" }
    to:
      - { sink: kafka, topic: "registry.{registry}.{repository}" }
      - { sink: amqp, exchange: "registry-events", routing_key: "{registry}.{repository}.{verb}", mode: structured }
  - name: scans-only
    match: { type: ["dev.regbridge.scan.*"] }
    final: true
    to: [{ sink: kafka, topic: scans }]
  - name: audit
    to: [{ sink: file }]
"#;

#[test]
fn rules_fan_out_match_and_stop_at_final() {
    let r = Router::from_yaml(RULES, &sinks()).unwrap();
    let t = route(&r, "harbor", "artifact", Some("library/nginx"), Some("v1.25"));
    let names: Vec<_> = t.iter().map(|(s, t)| (*s, t.name.as_str(), t.key.as_deref())).collect();
    assert_eq!(
        names,
        vec![
            ("kafka", "registry.harbor.library_nginx", None),
            ("amqp", "registry-events", Some("harbor.library/nginx.pushed")),
            ("file", "", None),
        ]
    );
    assert_eq!(t[1].1.mode, ContentMode::Structured);

    // Tag regex, repository glob (one segment) and registry each filter.
    assert_eq!(route(&r, "harbor", "artifact", Some("library/nginx"), Some("latest")).len(), 1);
    assert_eq!(route(&r, "harbor", "artifact", Some("library/team/nginx"), Some("v1")).len(), 1);
    assert_eq!(route(&r, "msr", "artifact", Some("library/nginx"), Some("v1")).len(), 1);
    assert_eq!(route(&r, "harbor", "artifact", None, Some("v1")).len(), 1);

    // `final` stops later rules (the audit file route).
    let scans = route(&r, "harbor", "scan", Some("library/nginx"), None);
    assert_eq!(scans.len(), 1);
    assert_eq!(scans[0].1.name, "scans");
}

#[test]
fn double_star_crosses_segments_and_missing_values_render_as_underscore() {
    let yaml = "routes:\n  - name: all\n    match: { repository: 'team/**' }\n    to: [{ sink: kafka, topic: 'r.{repository}.{tag}' }]\n";
    let r = Router::from_yaml(yaml, &sinks()).unwrap();
    let t = route(&r, "msr", "artifact", Some("team/a/b"), None);
    assert_eq!(t[0].1.name, "r.team_a_b._");
}

#[test]
fn duplicate_targets_are_delivered_once() {
    let yaml = "routes:\n  - name: a\n    to: [{ sink: kafka, topic: x }]\n  - name: b\n    to: [{ sink: kafka, topic: x }]\n";
    let r = Router::from_yaml(yaml, &sinks()).unwrap();
    assert_eq!(route(&r, "root", "artifact", Some("r"), None).len(), 1);
}

#[test]
fn compile_errors_name_the_rule_and_field() {
    let only_file = [&file::SPEC];
    let cases: &[(&str, &[&'static SinkSpec], &str)] = &[
        (
            "routes:\n  - name: a\n    to: [{ sink: kafka, topic: x }]\n",
            &only_file,
            "route `a`: sends to sink `kafka`, which is not configured",
        ),
        ("routes:\n  - name: a\n    to: [{ sink: pigeon }]\n", &only_file, "unknown sink `pigeon`"),
        (
            "routes:\n  - name: a\n    to: [{ sink: file, topic: x }]\n",
            &only_file,
            "unknown key `topic` for sink `file`",
        ),
        ("routes:\n  - name: a\n    to: []\n", &only_file, "lists no sink"),
        ("routes:\n  - name: a\n    match: { tag: '(' }\n    to: [{ sink: file }]\n", &only_file, "`tag`"),
        (
            "routes:\n  - name: a\n    match: { colour: red }\n    to: [{ sink: file }]\n",
            &only_file,
            "unknown field",
        ),
    ];
    for (yaml, sinks, needle) in cases {
        let e = Router::from_yaml(yaml, sinks).unwrap_err();
        assert!(e.contains(needle), "{yaml}: {e}");
    }
    let e =
        Router::from_yaml("routes:\n  - name: a\n    to: [{ sink: kafka, topic: '{image}' }]\n", &sinks())
            .unwrap_err();
    assert!(e.contains("unknown placeholder `{image}`") && e.contains("{repository}"), "{e}");
}

/// The example shipped for deployments must stay a valid rules file.
#[test]
fn the_deploy_example_compiles() {
    let all: Vec<&'static SinkSpec> = crate::sinks::REGISTRY.to_vec();
    let example = include_str!("../../deploy/routes.example.yaml");
    Router::from_yaml(example, &all).unwrap_or_else(|e| panic!("deploy/routes.example.yaml: {e}"));
}

/// The index must choose exactly the rules a rule-by-rule reading of the file would: many rules
/// (three words of the bit set), every kind of criterion, a `final` rule in the middle.
#[test]
fn an_index_over_many_rules_matches_rule_by_rule() {
    let mut yaml = String::from("routes:\n");
    for i in 0..150 {
        let m = match i % 5 {
            0 => format!("repository: 'team-{i}/**'"),
            1 => format!("repository: 'team-{i}/*', registry: [harbor]"),
            2 => format!("repository: ['team-{i}/*', 'shared/*'], type: 'dev.regbridge.scan.*'"),
            3 => format!("endpoint: [root], tag: '^v{i}$'"),
            _ => format!("repository: 'team-{i}/?', tag: 'rc'"),
        };
        let fin = if i == 77 { "    final: true\n" } else { "" };
        yaml.push_str(&format!(
            "  - name: r{i}\n    match: {{ {m} }}\n{fin}    to: [{{ sink: kafka, topic: t{i} }}]\n"
        ));
    }
    yaml.push_str("  - name: rest\n    to: [{ sink: file }]\n");
    let r = Router::from_yaml(&yaml, &sinks()).unwrap();
    let topics = |registry, noun, repo, tag| -> Vec<String> {
        route(&r, registry, noun, repo, tag).into_iter().map(|(_, t)| t.name).collect()
    };

    assert_eq!(topics("msr", "artifact", Some("team-0/a/b"), None), ["t0", ""]);
    assert_eq!(topics("msr", "artifact", Some("team-140/a/b"), None), ["t140", ""]);
    assert_eq!(topics("msr", "artifact", Some("team-141/a"), None), [""], "registry filters");
    assert_eq!(topics("harbor", "artifact", Some("team-141/a"), None), ["t141", ""]);
    assert_eq!(topics("harbor", "artifact", Some("team-141/a/b"), None), [""], "one segment");
    assert_eq!(topics("root", "artifact", Some("x"), Some("v148")), ["t148", ""]);
    assert_eq!(topics("root", "artifact", Some("team-149/a"), Some("1-rc2")), ["t149", ""]);
    assert_eq!(topics("root", "artifact", Some("team-149/ab"), Some("1-rc2")), [""]);
    // `final` on rule 77 (a scan rule) stops the later scan rules and the catch-all.
    let shared: Vec<String> = (0..=77).filter(|i| i % 5 == 2).map(|i| format!("t{i}")).collect();
    assert_eq!(topics("root", "scan", Some("shared/x"), None), shared);
    assert_eq!(topics("root", "scan", Some("team-82/x"), None), ["t82", ""], "not the final rule");
}
