//! The GraphQL documents sent to DS, embedded from `queries/*.graphql` at build time.
//!
//! Each operation file is completed by `queries/fragments.graphql`, so every document in
//! [`QUERIES`] is self-contained: exactly one operation plus the fragments it uses.

/// The fragments shared by the dossier operations.
#[cfg(test)]
const FRAGMENTS: &str = include_str!("../../../queries/fragments.graphql");

const DEMARCHE_DOSSIERS: &str = concat!(
    include_str!("../../../queries/demarche_dossiers.graphql"),
    "\n",
    include_str!("../../../queries/fragments.graphql"),
);
const GROUPE_INSTRUCTEUR_DOSSIERS: &str = concat!(
    include_str!("../../../queries/groupe_instructeur_dossiers.graphql"),
    "\n",
    include_str!("../../../queries/fragments.graphql"),
);
const DOSSIER: &str = concat!(
    include_str!("../../../queries/dossier.graphql"),
    "\n",
    include_str!("../../../queries/fragments.graphql"),
);
const DELETED_DOSSIERS: &str = include_str!("../../../queries/deleted_dossiers.graphql");

/// Every document the client sends, as `(operation name, document)`.
///
/// Each document holds exactly one operation, named as here, so it can be executed without
/// an `operationName`. Other crates' tests (the simulator) execute all of them.
pub const QUERIES: &[(&str, &str)] = &[
    (Operation::DemarcheDossiers.name(), DEMARCHE_DOSSIERS),
    (
        Operation::GroupeInstructeurDossiers.name(),
        GROUPE_INSTRUCTEUR_DOSSIERS,
    ),
    (Operation::Dossier.name(), DOSSIER),
    (Operation::DeletedDossiers.name(), DELETED_DOSSIERS),
];

/// One GraphQL operation of [`QUERIES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    DemarcheDossiers,
    GroupeInstructeurDossiers,
    Dossier,
    DeletedDossiers,
}

impl Operation {
    /// The operation's name in its document.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Operation::DemarcheDossiers => "DemarcheDossiers",
            Operation::GroupeInstructeurDossiers => "GroupeInstructeurDossiers",
            Operation::Dossier => "Dossier",
            Operation::DeletedDossiers => "DeletedDossiers",
        }
    }

    pub(crate) const fn document(self) -> &'static str {
        match self {
            Operation::DemarcheDossiers => DEMARCHE_DOSSIERS,
            Operation::GroupeInstructeurDossiers => GROUPE_INSTRUCTEUR_DOSSIERS,
            Operation::Dossier => DOSSIER,
            Operation::DeletedDossiers => DELETED_DOSSIERS,
        }
    }

    /// The top-level field of `data`: when it is null, the errors explain why.
    pub(crate) const fn root(self) -> &'static str {
        match self {
            Operation::DemarcheDossiers | Operation::DeletedDossiers => "demarche",
            Operation::GroupeInstructeurDossiers => "groupeInstructeur",
            Operation::Dossier => "dossier",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dossier_document_ends_with_the_shared_fragments() {
        for op in [
            Operation::DemarcheDossiers,
            Operation::GroupeInstructeurDossiers,
            Operation::Dossier,
        ] {
            assert!(op.document().ends_with(FRAGMENTS), "{}", op.name());
        }
        assert!(!Operation::DeletedDossiers.document().contains("fragment "));
    }

    #[test]
    fn queries_are_named_after_their_single_operation() {
        for (name, document) in QUERIES {
            let operations: Vec<&str> = document
                .lines()
                .filter_map(|line| line.strip_prefix("query "))
                .collect();
            assert_eq!(operations.len(), 1, "{name}");
            assert!(operations[0].starts_with(name), "{name}: {}", operations[0]);
        }
    }
}
