//! Which Ingresses this controller serves.

use std::collections::HashSet;

use crate::store::Snapshot;
use crate::kube::objects::Ingress;

use super::RouteConfig;

/// The pre-IngressClass way to pick a controller, still in wide use.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// Marks the IngressClass that Ingresses without any class belong to.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// The class decision for one snapshot, built once so each Ingress costs one
/// hash probe.
pub(crate) struct ClassSelector<'a> {
    /// Names of IngressClasses whose `spec.controller` is ours.
    our_classes: HashSet<&'a str>,
    /// One of our IngressClasses is the cluster default. Only classes with our
    /// controller count: a class merely named like `--ingress-class` may
    /// belong to another controller, and then so does the default.
    ours_is_default: bool,
    config: &'a RouteConfig,
}

impl<'a> ClassSelector<'a> {
    pub(crate) fn new(snapshot: &'a Snapshot, config: &'a RouteConfig) -> ClassSelector<'a> {
        let mut our_classes = HashSet::new();
        let mut ours_is_default = false;
        for class in snapshot.ingress_classes.values() {
            if class.spec.controller.as_deref() == Some(config.controller_name.as_str()) {
                our_classes.insert(class.metadata.name.as_str());
                ours_is_default |= class
                    .metadata
                    .annotations
                    .get(DEFAULT_CLASS_ANNOTATION)
                    .is_some_and(|v| v == "true");
            }
        }
        ClassSelector { our_classes, ours_is_default, config }
    }

    pub(crate) fn serves(&self, ingress: &Ingress) -> bool {
        match ingress.spec.ingress_class_name.as_deref().filter(|name| !name.is_empty()) {
            // The `--ingress-class` name counts even before its IngressClass exists.
            Some(name) => name == self.config.ingress_class || self.our_classes.contains(name),
            None => match ingress.metadata.annotations.get(LEGACY_CLASS_ANNOTATION) {
                Some(legacy) => legacy == self.config.ingress_class,
                None => self.config.watch_ingress_without_class || self.ours_is_default,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kube::objects::{IngressClass, ObjectKey, SmolStr};

    fn config() -> RouteConfig {
        RouteConfig {
            ingress_class: "ingressd".into(),
            controller_name: "ingressd.io/ingress-controller".into(),
            ..RouteConfig::default()
        }
    }

    fn class(name: &str, controller: &str, default: bool) -> (ObjectKey, Arc<IngressClass>) {
        let mut class = IngressClass::default();
        class.metadata.name = name.into();
        class.spec.controller = Some(controller.into());
        if default {
            class.metadata.annotations.insert(DEFAULT_CLASS_ANNOTATION, "true");
        }
        (class.metadata.key(), Arc::new(class))
    }

    fn ingress(class_name: Option<&str>, legacy: Option<&str>) -> Ingress {
        let mut ingress = Ingress::default();
        ingress.spec.ingress_class_name = class_name.map(SmolStr::new);
        if let Some(legacy) = legacy {
            ingress.metadata.annotations.insert(LEGACY_CLASS_ANNOTATION, legacy);
        }
        ingress
    }

    fn serves(classes: &[(ObjectKey, Arc<IngressClass>)], config: &RouteConfig, ingress: &Ingress) -> bool {
        let mut snapshot = Snapshot::default();
        for (_, class) in classes {
            snapshot.insert(crate::kube::Object::IngressClass(IngressClass::clone(class)));
        }
        ClassSelector::new(&snapshot, config).serves(ingress)
    }

    #[test]
    fn class_name_selects_by_controller_or_flag() {
        let config = config();
        let classes = [class("edge", "ingressd.io/ingress-controller", false), class("nginx", "k8s.io/ingress-nginx", false)];
        assert!(serves(&classes, &config, &ingress(Some("edge"), None)), "class with our controller");
        assert!(serves(&[], &config, &ingress(Some("ingressd"), None)), "--ingress-class before its IngressClass exists");
        assert!(!serves(&classes, &config, &ingress(Some("nginx"), None)), "another controller's class");
        assert!(!serves(&classes, &config, &ingress(Some("missing"), None)), "unknown class");
        assert!(!serves(&classes, &config, &ingress(Some("nginx"), Some("ingressd"))), "class name beats the annotation");
    }

    #[test]
    fn legacy_annotation_applies_without_class_name() {
        let config = config();
        assert!(serves(&[], &config, &ingress(None, Some("ingressd"))));
        assert!(!serves(&[], &config, &ingress(None, Some("nginx"))));
        let all = RouteConfig { watch_ingress_without_class: true, ..config };
        assert!(!serves(&[], &all, &ingress(None, Some("nginx"))), "an annotation for another controller is a class");
    }

    #[test]
    fn classless_needs_the_flag_or_our_default_class() {
        let config = config();
        assert!(!serves(&[], &config, &ingress(None, None)));
        assert!(!serves(&[], &config, &ingress(Some(""), None)));
        let all = RouteConfig { watch_ingress_without_class: true, ..config.clone() };
        assert!(serves(&[], &all, &ingress(None, None)));
        assert!(serves(&[class("edge", "ingressd.io/ingress-controller", true)], &config, &ingress(None, None)));
        assert!(!serves(&[class("nginx", "k8s.io/ingress-nginx", true)], &config, &ingress(None, None)), "someone else's default");
        assert!(!serves(&[class("edge", "ingressd.io/ingress-controller", false)], &config, &ingress(None, None)));
    }
}
