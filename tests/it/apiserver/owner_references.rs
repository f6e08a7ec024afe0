//! ownerReference and GC finalizer validation: at most one controller reference, every reference
//! with apiVersion, kind, name and uid, and never both `orphan` and `foregroundDeletion`, with the
//! upstream error texts.

use apiserver_fake::{OwnerReference, Reason};

use super::{FG, NS, ORPHAN, assert_error, cm, failure, get, run_seeds, server, with_finalizers};

/// At most one controller ref, every ref has a uid, orphan+foregroundDeletion is invalid.
#[test]
fn owner_references_and_gc_finalizers_are_validated() {
    run_seeds(|| {
        let server = server();
        let o1 = server.create(cm(NS, "o1")).expect("create");
        let o2 = server.create(cm(NS, "o2")).expect("create");
        let child = cm(NS, "c");

        let two = child.clone().with_owner(OwnerReference::controller_of(&o1));
        let two = two.with_owner(OwnerReference::controller_of(&o2));
        let error = failure(server.create(two));
        assert_eq!((error.code, error.reason), (422, Reason::Invalid));
        assert!(error.message.starts_with("ConfigMap \"c\" is invalid: "), "{error}");
        assert!(
            error.message.contains("Only one reference can have Controller set to true"),
            "{error}"
        );

        let mut no_uid = OwnerReference::to(&o1, Some(true));
        no_uid.uid.clear();
        let error = failure(server.create(child.clone().with_owner(no_uid)));
        assert_eq!((error.code, error.reason), (422, Reason::Invalid));
        assert!(error.message.contains("metadata.ownerReferences.uid: Invalid value: \"\""));

        let both = with_finalizers(child.clone(), &[ORPHAN, FG]);
        let error = failure(server.create(both));
        assert_eq!((error.code, error.reason), (422, Reason::Invalid));
        assert!(
            error.message.contains("finalizer orphan and foregroundDeletion cannot be both set"),
            "{error}"
        );
        assert!(failure(get(&server, &child)).is_not_found());

        // Valid: one controller plus a plain reference; then updates hit the same rules.
        let valid = child
            .clone()
            .with_owner(OwnerReference::controller_of(&o1))
            .with_owner(OwnerReference::to(&o2, None))
            .with_finalizer(ORPHAN);
        let stored = server.create(valid).expect("valid create");
        let mut second_controller = stored.clone();
        second_controller.metadata.owner_references[1].controller = Some(true);
        assert_eq!(failure(server.update(second_controller)).reason, Reason::Invalid);
        let error = failure(server.update(stored.clone().with_finalizer(FG)));
        assert_eq!(error.reason, Reason::Invalid);
        assert_eq!(get(&server, &stored).expect("untouched"), stored);
    });
}

/// `ValidateOwnerReferences`: the error names the controllers as `Kind/name`.
#[test]
fn two_controller_refs_error_names_kind_and_name() {
    run_seeds(|| {
        let server = server();
        let o1 = server.create(cm(NS, "o1")).expect("create");
        let o2 = server.create(cm(NS, "o2")).expect("create");
        let two = cm(NS, "c")
            .with_owner(OwnerReference::controller_of(&o1))
            .with_owner(OwnerReference::controller_of(&o2));
        let error = failure(server.create(two));
        assert!(
            error.message.ends_with(
                "Only one reference can have Controller set to true. Found \"true\" in \
                 references for ConfigMap/o1 and ConfigMap/o2"
            ),
            "{error}"
        );
    });
}

/// `validateOwnerReference`: kind, name and uid errors read `must not be empty`.
#[test]
fn owner_reference_without_uid_error_matches_upstream_text() {
    run_seeds(|| {
        let server = server();
        let owner = server.create(cm(NS, "o")).expect("create");
        let mut no_uid = OwnerReference::controller_of(&owner);
        no_uid.uid.clear();
        let error = failure(server.create(cm(NS, "c").with_owner(no_uid)));
        assert_error(
            &error,
            422,
            Reason::Invalid,
            "ConfigMap \"c\" is invalid: metadata.ownerReferences.uid: Invalid value: \"\": must \
             not be empty",
        );
    });
}

/// `ValidateFinalizers`: the finalizer list is printed as a Go `%#v` slice.
#[test]
fn orphan_and_foreground_error_prints_the_finalizers_as_a_go_slice() {
    run_seeds(|| {
        let server = server();
        let error = failure(server.create(with_finalizers(cm(NS, "c"), &[ORPHAN, FG])));
        assert_error(
            &error,
            422,
            Reason::Invalid,
            "ConfigMap \"c\" is invalid: metadata.finalizers: Invalid value: []string{\"orphan\", \
             \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set",
        );
    });
}
