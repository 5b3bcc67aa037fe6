//! The GraphQL documents sent to DS, embedded from `queries/*.graphql` at build time.
//!
//! Each operation file is completed by `queries/fragments.graphql`, so every document in
//! [`QUERIES`] is self-contained: exactly one operation plus the fragments it uses.

/// The fragments shared by the dossier operations.
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
const DEMARCHE_REVISION: &str = include_str!("../../../queries/demarche_revision.graphql");

/// Dossiers asked per `DossiersByNumber` request (see [`dossiers_by_number_query`]).
///
/// Why 50 fits DS's limits (`app/graphql/api/v2/schema.rb`: `max_complexity 60_000`,
/// `max_depth 15`, `max_query_string_tokens 20_000`): the selection holds no connection, so
/// graphql-ruby's complexity is one per selected field, 172 per dossier with every include
/// on (files plus what `dossier.json` needs), 8,600 for 50 — half of one
/// `dossiers(first: 100)` page (17,207), which DS admits;
/// aliases add no depth (8: a repetition row's SIRET attestation's `filename`); 50 aliases
/// and the fragments make about 1,000 tokens. `tests/it/schema.rs` measures all three on
/// the real schema. What bounds the batch is DS's 30 s timeout and the answer's size: 50
/// dossiers weigh half a full page, and a batch that times out or is too large is halved.
pub const DOSSIERS_PER_REQUEST: usize = 50;

/// The header of `DossiersByNumber`: the variables of `queries/dossier.graphql`.
const BY_NUMBER_HEADER: &str = "# Dossiers by number, one aliased `dossier` field per number (`d{number}`), each\n\
# selected as in `queries/dossier.graphql`. Completed by fragments.graphql.\n\
query DossiersByNumber(\n  $includeGenerated: Boolean! = false\n  $includeEntreprise: Boolean! = false\n\
  $includeDemarche: Boolean! = true\n  $includeGroupe: Boolean! = true\n\
  $includeApplicant: Boolean! = true\n  $includeValues: Boolean! = true\n\
  $includeExchanges: Boolean! = true\n) {\n";

/// The alias under which `DossiersByNumber` asks for dossier `number`.
pub(crate) fn alias(number: u64) -> String {
    format!("d{number}")
}

/// The `DossiersByNumber` document [`crate::Client::dossiers_by_number`] sends for
/// `numbers`: `d{n}: dossier(number: n)` for each, with the selection of the `Dossier`
/// query, then `queries/fragments.graphql`. Numbers are written as literals, so they must
/// fit DS's 32-bit `Int` (the client checks before). Public for the tests that validate
/// it against DS's schema and measure its complexity.
pub fn dossiers_by_number_query(numbers: &[u64]) -> String {
    let mut document = String::from(BY_NUMBER_HEADER);
    for &number in numbers {
        document.push_str(&format!(
            "  {}: dossier(number: {number}) {{\n    ...DossierFields\n    demarche {{\n      number\n    }}\n  }}\n",
            alias(number)
        ));
    }
    document.push_str("}\n\n");
    document.push_str(FRAGMENTS);
    document
}

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
    (Operation::DemarcheRevision.name(), DEMARCHE_REVISION),
];

/// One GraphQL operation of [`QUERIES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    DemarcheDossiers,
    GroupeInstructeurDossiers,
    Dossier,
    DeletedDossiers,
    DemarcheRevision,
    /// Built per request by [`dossiers_by_number_query`].
    DossiersByNumber,
}

impl Operation {
    /// The operation's name in its document.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Operation::DemarcheDossiers => "DemarcheDossiers",
            Operation::GroupeInstructeurDossiers => "GroupeInstructeurDossiers",
            Operation::Dossier => "Dossier",
            Operation::DeletedDossiers => "DeletedDossiers",
            Operation::DemarcheRevision => "DemarcheRevision",
            Operation::DossiersByNumber => "DossiersByNumber",
        }
    }

    pub(crate) const fn document(self) -> &'static str {
        match self {
            Operation::DemarcheDossiers => DEMARCHE_DOSSIERS,
            Operation::GroupeInstructeurDossiers => GROUPE_INSTRUCTEUR_DOSSIERS,
            Operation::Dossier => DOSSIER,
            Operation::DeletedDossiers => DELETED_DOSSIERS,
            Operation::DemarcheRevision => DEMARCHE_REVISION,
            // Sent with its own document (`Inner::execute_document`).
            Operation::DossiersByNumber => "",
        }
    }

    /// The top-level field of `data`: when it is null, the errors explain why. `None` for
    /// `DossiersByNumber`, whose top-level fields are aliases.
    pub(crate) const fn root(self) -> Option<&'static str> {
        match self {
            Operation::DemarcheDossiers
            | Operation::DeletedDossiers
            | Operation::DemarcheRevision => Some("demarche"),
            Operation::GroupeInstructeurDossiers => Some("groupeInstructeur"),
            Operation::Dossier => Some("dossier"),
            Operation::DossiersByNumber => None,
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
        assert!(!Operation::DemarcheRevision.document().contains("fragment "));
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
