//! What DS charges for a query, by DS's own rules (graphql-ruby's AST analyzers as
//! configured in DS's `app/graphql/api/v2/schema.rb`: `max_complexity 60_000`,
//! `max_depth 15`, `max_query_string_tokens 20_000`, `complexity_cost_calculation_mode(:future)`;
//! DS's types declare no custom complexity):
//! - complexity: every selected field costs 1 plus its children; on an abstract type, the
//!   most expensive possible type counts; fields selected twice (fragments) count once; a
//!   `…Connection` field multiplies what is under `nodes`/`edges` by its page size (`first`
//!   or `last`, else DS's `default_page_size` 100); fields skipped by `@include`/`@skip`
//!   for the given variables cost nothing;
//! - depth: the longest chain of nested fields, a top-level field being 1;
//! - tokens: lexical tokens of the query string (names, numbers, strings, punctuators,
//!   `...`), comments excluded.

use apollo_compiler::ast::Value;
use apollo_compiler::executable::{Field, Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Node, Schema};

/// DS's limits (`app/graphql/api/v2/schema.rb`).
pub const MAX_COMPLEXITY: u64 = 60_000;
pub const MAX_DEPTH: u64 = 15;
pub const MAX_TOKENS: usize = 20_000;
/// DS's `default_page_size`, charged for a connection asked without `first`/`last`.
const DEFAULT_PAGE_SIZE: u64 = 100;

/// Measures one operation with every `@include` condition true (the costliest variant)
/// and the given integer variables (`first`).
pub struct Cost<'a> {
    pub schema: &'a Valid<Schema>,
    pub document: &'a Valid<ExecutableDocument>,
    pub ints: &'a [(&'a str, u64)],
}

impl<'a> Cost<'a> {
    pub fn complexity(&self, set: &'a SelectionSet) -> u64 {
        self.sets_complexity(set.ty.as_str(), &[set])
    }

    pub fn depth(&self, set: &'a SelectionSet) -> u64 {
        self.sets_depth(set.ty.as_str(), &[set])
    }

    fn sets_complexity(&self, ty: &str, sets: &[&'a SelectionSet]) -> u64 {
        self.possible_types(ty)
            .iter()
            .map(|object| {
                self.collect(object, sets)
                    .iter()
                    .map(|fields| self.field_complexity(fields))
                    .sum::<u64>()
            })
            .max()
            .unwrap_or(0)
    }

    fn field_complexity(&self, fields: &[&'a Node<Field>]) -> u64 {
        let Some(field) = fields.first() else {
            return 0;
        };
        let ty = field.definition.ty.inner_named_type().as_str();
        let sets: Vec<&'a SelectionSet> = fields.iter().map(|f| &f.selection_set).collect();
        if !ty.ends_with("Connection") {
            return 1 + self.sets_complexity(ty, &sets);
        }
        let page = ["first", "last"]
            .iter()
            .filter_map(|arg| field.specified_argument_by_name(arg))
            .filter_map(|value| self.int(value))
            .max()
            .unwrap_or(DEFAULT_PAGE_SIZE);
        let children: u64 = self
            .collect(ty, &sets)
            .iter()
            .map(|child| {
                let cost = self.field_complexity(child);
                match child.first().map(|f| f.name.as_str()) {
                    Some("nodes" | "edges") => cost * page,
                    _ => cost,
                }
            })
            .sum();
        1 + children
    }

    fn sets_depth(&self, ty: &str, sets: &[&'a SelectionSet]) -> u64 {
        self.possible_types(ty)
            .iter()
            .flat_map(|object| self.collect(object, sets))
            .map(|fields| {
                let sets: Vec<&'a SelectionSet> = fields.iter().map(|f| &f.selection_set).collect();
                let inner = fields
                    .first()
                    .map(|f| f.definition.ty.inner_named_type().as_str())
                    .unwrap_or_default();
                1 + self.sets_depth(inner, &sets)
            })
            .max()
            .unwrap_or(0)
    }

    /// The fields selected on concrete type `object`, grouped by response key.
    fn collect(&self, object: &str, sets: &[&'a SelectionSet]) -> Vec<Vec<&'a Node<Field>>> {
        let mut out: Vec<(&'a str, Vec<&'a Node<Field>>)> = Vec::new();
        let mut stack: Vec<&'a SelectionSet> = sets.iter().rev().copied().collect();
        while let Some(set) = stack.pop() {
            for selection in set.selections.iter().rev() {
                if !self.included(selection.directives()) {
                    continue;
                }
                match selection {
                    Selection::Field(field) => {
                        let key = field.response_key().as_str();
                        match out.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, fields)) => fields.push(field),
                            None => out.push((key, vec![field])),
                        }
                    }
                    Selection::FragmentSpread(spread) => {
                        if let Some(fragment) = self.document.fragments.get(&spread.fragment_name)
                            && self.applies(object, fragment.type_condition().as_str())
                        {
                            stack.push(&fragment.selection_set);
                        }
                    }
                    Selection::InlineFragment(inline) => {
                        let condition = inline.type_condition.as_ref().map(|c| c.as_str());
                        if condition.is_none_or(|c| self.applies(object, c)) {
                            stack.push(&inline.selection_set);
                        }
                    }
                }
            }
        }
        out.into_iter().map(|(_, fields)| fields).collect()
    }

    fn applies(&self, object: &str, condition: &str) -> bool {
        object == condition || self.schema.is_subtype(condition, object)
    }

    /// The object types a value of type `ty` may have (itself for an object or a scalar).
    fn possible_types(&self, ty: &str) -> Vec<String> {
        match self.schema.types.get(ty) {
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => self
                .schema
                .types
                .iter()
                .filter(|(name, t)| t.is_object() && self.schema.is_subtype(ty, name.as_str()))
                .map(|(name, _)| name.to_string())
                .collect(),
            _ => vec![ty.to_owned()],
        }
    }

    fn included(&self, directives: &apollo_compiler::executable::DirectiveList) -> bool {
        // Every `@include` on (the costliest variant); `@skip` only when literally true.
        !directives.get("skip").is_some_and(|skip| {
            skip.specified_argument_by_name("if")
                .is_some_and(|v| matches!(v.as_ref(), Value::Boolean(true)))
        })
    }

    fn int(&self, value: &Node<Value>) -> Option<u64> {
        match value.as_ref() {
            Value::Int(i) => i.try_to_i32().ok().and_then(|i| u64::try_from(i).ok()),
            Value::Variable(name) => self
                .ints
                .iter()
                .find(|(n, _)| *n == name.as_str())
                .map(|(_, v)| *v),
            _ => None,
        }
    }
}

/// Lexical tokens of a GraphQL document, as graphql-ruby's lexer counts them.
pub fn tokens(document: &str) -> usize {
    let mut count = 0;
    for line in document.lines() {
        let code = line.split('#').next().unwrap_or_default();
        let mut chars = code.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_whitespace() || c == ',' {
                continue;
            }
            count += 1;
            if c.is_alphanumeric() || c == '_' || c == '-' {
                while chars
                    .next_if(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                    .is_some()
                {}
            } else if c == '.' {
                // `...`
                while chars.next_if(|c| *c == '.').is_some() {}
            } else if c == '"' {
                while chars.next().is_some_and(|c| c != '"') {}
            }
        }
    }
    count
}
