//! Routing: the rules file (YAML, globs, tag regexes, target templates) compiled as at start-up,
//! then matched and rendered against an arbitrary event; and destination templates on their own.
//!
//! Input: the rules file's text, a NUL byte, then the event as lines: endpoint, registry, type,
//! noun, verb, repository, tag (a missing repository or tag is absent). Every line of either part
//! is also parsed as a template and rendered for every sink. Seeds: the example rules of
//! `deploy/` with fixture-like events (`fuzz/seed`).
//!
//! Beyond "never panics": a routed event never lists a target twice; a parsed template keeps its
//! source text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regbridge::route::{RouteInput, Router, Template, Values};
use regbridge::sinks;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (rules, event) = text.split_once('\0').unwrap_or((&text, ""));
    let mut lines = event.split('\n');
    let mut next = || lines.next();
    let [endpoint, registry, ty, noun, verb] = [(); 5].map(|()| next().unwrap_or_default());
    let (repository, tag) = (next(), next());
    let ev = RouteInput { endpoint, registry, ty, noun, verb, repository, tag };
    let values = Values { endpoint, registry, noun, verb, repository, tag };

    if let Ok(router) = Router::from_yaml(rules, sinks::REGISTRY) {
        let routed = router.route(&ev);
        for (i, a) in routed.iter().enumerate() {
            assert!(!routed[i + 1..].contains(a), "target listed twice: {a:?}");
        }
        router.describe();
    }

    for line in rules.lines().chain(event.lines()) {
        let Ok(template) = Template::parse(line) else { continue };
        assert_eq!(template.as_str(), line);
        for sink in sinks::REGISTRY {
            template.render(&values, sink.name_char_ok);
            template.render(&values, sink.key_char_ok);
        }
    }
});
