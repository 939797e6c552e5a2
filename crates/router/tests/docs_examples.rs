//! Every YAML example in docs/config.md builds: a whole configuration, a
//! list of virtual hosts, or a list of routes. An example marked
//! `<!-- rejected -->` must fail to build, with the errors the text block
//! after it shows.

use rauta_router::RouteTable;

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}\n"))
        .collect::<String>()
}

/// The example as a whole configuration.
fn as_config(example: &str) -> String {
    let first = example
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap_or("");
    if !first.starts_with("- ") {
        return example.to_owned();
    }
    if example.contains("\n  domains:")
        || first.starts_with("- name:") && example.contains("domains:")
    {
        return format!("virtual_hosts:\n{}", indent(example, "  "));
    }
    format!(
        "virtual_hosts:\n  - name: example\n    domains: [\"*\"]\n    routes:\n{}",
        indent(example, "      ")
    )
}

#[test]
fn every_yaml_example_in_the_configuration_reference_builds() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
    let text = std::fs::read_to_string(path).expect("docs/config.md");
    let mut examples = 0;
    let mut failures = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("```yaml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("a closed code block");
        let example = &body[..end];
        let line = text[..text.len() - rest.len() + start].lines().count() + 1;
        rest = &body[end + 3..];
        examples += 1;
        let before = &text[..text.len() - rest.len() - end - 3 - 8];
        let rejected = before.trim_end().ends_with("<!-- rejected -->");
        match (RouteTable::from_yaml(&as_config(example)), rejected) {
            (Ok(_), false) => {}
            (Err(e), true) => {
                // The errors shown after the example are the ones it gives.
                let shown = rest
                    .trim_start()
                    .strip_prefix("```text\n")
                    .and_then(|t| t.split_once("```"))
                    .map(|(t, _)| t.trim_end());
                if shown != Some(e.to_string().trim_end()) {
                    failures.push(format!("line {line}: shows {shown:?}, gives\n{e}"));
                }
            }
            (Ok(_), true) => failures.push(format!("line {line}: loads, but is marked rejected")),
            (Err(e), false) => failures.push(format!("line {line}: {e}")),
        }
    }
    assert!(examples >= 41, "only {examples} examples found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
