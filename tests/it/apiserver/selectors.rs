//! Label selectors: Kubernetes' syntax (`=`, `==`, `!=`, `in`, `notin`, exists, `!`, commas),
//! errors for malformed selectors, and LIST filtered by namespace and selector.

use std::collections::BTreeMap;

use apiserver_fake::{ApiServer, Object, Selector};
use sim_core::{spawn, yield_now};

use super::{NS, cm, namespace, run_seeds, server};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Label selectors: `=`, `==`, `!=`, `in`, `notin`, exists, `!` and comma conjunction.
#[test]
fn label_selector_syntax_matches_like_kubernetes() {
    run_seeds(|| {
        let sets = [
            ("a", labels(&[("app", "web"), ("tier", "front")])),
            ("b", labels(&[("app", "web"), ("tier", "back")])),
            ("c", labels(&[("app", "db")])),
            ("d", labels(&[])),
        ];
        let cases: [(&str, &[&str]); 12] = [
            ("", &["a", "b", "c", "d"]),
            ("app=web", &["a", "b"]),
            ("app==web", &["a", "b"]),
            ("app != web", &["c", "d"]),
            ("tier in (front, back)", &["a", "b"]),
            ("tier notin (front)", &["b", "c", "d"]),
            ("tier", &["a", "b"]),
            ("!tier", &["c", "d"]),
            ("app=web,tier!=front", &["b"]),
            ("app in (web,db),!tier", &["c"]),
            ("app,tier notin (back)", &["a", "c"]),
            ("example.com/team", &[]),
        ];
        for (text, expected) in cases {
            let selector = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let matched: Vec<_> =
                sets.iter().filter(|(_, l)| selector.matches(l)).map(|(name, _)| *name).collect();
            assert_eq!(matched, expected, "selector {text:?}");
            assert_eq!(selector.is_empty(), text.is_empty());
        }
    });
}

/// Label selectors: malformed selectors are errors.
#[test]
fn invalid_label_selectors_are_errors() {
    run_seeds(|| {
        for text in [
            "app in web",
            "app in (web",
            "app in (web))",
            "=web",
            "app=web=x",
            "app=we b",
            "!",
            ",",
            "app,,tier",
            "a b",
            "tier notin front",
        ] {
            let error = Selector::parse(text).expect_err(text);
            assert!(error.to_string().starts_with("invalid label selector"), "{text}: {error}");
            assert_eq!(error.selector, text);
            let expected = format!("invalid label selector {text:?}: {}", error.reason);
            assert_eq!(error.to_string(), expected);
        }
        let error = Selector::parse("app in (web").expect_err("unbalanced");
        assert_eq!(
            error.to_string(),
            r#"invalid label selector "app in (web": unbalanced parentheses"#
        );
        let error = Selector::parse("=web").expect_err("no key");
        assert_eq!(error.reason, r#"invalid key "" in "=web""#);
    });
}

/// Label selectors: LIST filters by namespace and selector, ordered by namespace then name.
#[test]
fn list_filters_by_namespace_and_selector() {
    run_seeds(|| {
        let server = server();
        server.create(namespace("other")).expect("create");
        let objects = [
            (NS, "d", &[("app", "web"), ("tier", "front")][..]),
            (NS, "b", &[("app", "web")][..]),
            ("other", "a", &[("app", "web"), ("tier", "back")][..]),
            (NS, "c", &[("app", "db")][..]),
        ];
        let creators: Vec<_> = objects
            .into_iter()
            .map(|(ns, name, pairs)| {
                let server = server.clone();
                let mut object = cm(ns, name);
                object.metadata.labels = labels(pairs);
                spawn(format!("create-{name}"), async move {
                    yield_now().await;
                    server.create(object).expect("create");
                })
            })
            .collect();
        spawn("lister", async move {
            for creator in creators {
                creator.await;
            }
            let list = |ns: Option<&str>, text: &str| {
                let selector = Selector::parse(text).expect("valid");
                let list = server.list("v1", "ConfigMap", ns, &selector).expect("list");
                assert_eq!(list.resource_version, server.resource_version());
                list.items.iter().map(Object::key).collect::<Vec<_>>()
            };
            assert_eq!(list(None, ""), ["default/b", "default/c", "default/d", "other/a"]);
            assert_eq!(list(None, "app=web"), ["default/b", "default/d", "other/a"]);
            assert_eq!(list(Some(NS), "app=web"), ["default/b", "default/d"]);
            assert_eq!(list(Some(NS), "app=web,!tier"), ["default/b"]);
            assert_eq!(list(None, "tier in (back)"), ["other/a"]);
            assert_eq!(list(Some("other"), "app notin (web)"), Vec::<String>::new());
            // Cluster-scoped kinds ignore the namespace.
            assert_eq!(
                list_namespaces(&server),
                ["default", "kube-public", "kube-system", "other"]
            );
        });
    });
}

fn list_namespaces(server: &ApiServer) -> Vec<String> {
    let list = server.list("v1", "Namespace", Some(NS), &Selector::everything()).expect("list");
    list.items.iter().map(|o| o.metadata.name.clone()).collect()
}
