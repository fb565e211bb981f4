//! Route index: every rule's match criteria compiled into one lookup per field, so an event is
//! matched against all rules at once instead of rule by rule.
//!
//! Each field answers with a bit set of the rules it lets through: exact fields (endpoint,
//! registry) by one hash lookup, pattern fields (type and repository globs, tag regexes) by one
//! `RegexSet` pass over the value, which walks the value once whatever the number of patterns.
//! The rules that match are the intersection, taken in file order so `final` keeps its meaning.
//! Routing 1,000 rules therefore costs a few hash lookups, three automaton passes and an `and`
//! over 16 words, not 1,000 regex searches.

use std::collections::HashMap;

use regex::RegexSet;

/// One bit per rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bits(Vec<u64>);

impl Bits {
    fn zeros(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }

    fn ones(n: usize) -> Self {
        let mut b = Self(vec![u64::MAX; n.div_ceil(64)]);
        if !n.is_multiple_of(64) {
            // The bits past the last rule stay clear: they must never read as a matching rule.
            *b.0.last_mut().expect("n > 0") = (1 << (n % 64)) - 1;
        }
        b
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The rule indices in ascending order.
    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    w * 64 + bit
                })
            })
        })
    }
}

/// What one rule asks of each field; an empty list (or `None`) asks nothing.
pub(super) struct Criteria<'a> {
    pub endpoint: &'a [String],
    pub registry: &'a [String],
    /// Anchored regexes compiled from globs.
    pub ty: Vec<String>,
    pub repository: Vec<String>,
    /// A regex searched anywhere in the tag.
    pub tag: Option<&'a str>,
}

/// The values of one event that rules look at.
pub(super) struct Probe<'a> {
    pub endpoint: &'a str,
    pub registry: &'a str,
    pub ty: &'a str,
    pub repository: Option<&'a str>,
    pub tag: Option<&'a str>,
}

#[derive(Debug)]
pub(super) struct Index {
    rules: usize,
    endpoint: Exact,
    registry: Exact,
    ty: Patterns,
    repository: Patterns,
    tag: Patterns,
}

/// Rules without a criterion on the field pass (`open`); the others pass on their values.
#[derive(Debug)]
struct Exact {
    open: Bits,
    by_value: HashMap<String, Bits>,
}

#[derive(Debug)]
struct Patterns {
    open: Bits,
    /// `None` when no rule has a criterion on the field. Each distinct pattern is in it once,
    /// however many rules share it (a `type` glob is typically on many).
    set: Option<RegexSet>,
    /// The rules each pattern of `set` belongs to.
    owners: Vec<Bits>,
}

impl Index {
    /// Compiles the criteria of rules `0..n`; an error names the rule (by index) and the field.
    pub(super) fn build(rules: &[Criteria<'_>]) -> Result<Self, (usize, String)> {
        let n = rules.len();
        let mut endpoint = Exact::new(n);
        let mut registry = Exact::new(n);
        for (i, r) in rules.iter().enumerate() {
            endpoint.add(i, r.endpoint);
            registry.add(i, r.registry);
        }
        Ok(Self {
            rules: n,
            endpoint,
            registry,
            ty: Patterns::build(n, rules.iter().map(|r| r.ty.iter().map(String::as_str)), "type")?,
            repository: Patterns::build(
                n,
                rules.iter().map(|r| r.repository.iter().map(String::as_str)),
                "repository",
            )?,
            tag: Patterns::build(n, rules.iter().map(|r| r.tag.into_iter()), "tag")?,
        })
    }

    /// The rules that match, in file order.
    pub(super) fn matching(&self, p: &Probe<'_>) -> Bits {
        let mut acc = Bits::ones(self.rules);
        // Cheapest first; stop as soon as no rule is left.
        self.endpoint.narrow(p.endpoint, &mut acc);
        self.registry.narrow(p.registry, &mut acc);
        for (field, value) in [(&self.ty, Some(p.ty)), (&self.repository, p.repository), (&self.tag, p.tag)] {
            if acc.is_empty() {
                break;
            }
            field.narrow(value, &mut acc);
        }
        acc
    }
}

impl Exact {
    fn new(n: usize) -> Self {
        Self { open: Bits::zeros(n), by_value: HashMap::new() }
    }

    fn add(&mut self, rule: usize, values: &[String]) {
        if values.is_empty() {
            self.open.set(rule);
        }
        let n = self.open.0.len() * 64;
        for v in values {
            self.by_value.entry(v.clone()).or_insert_with(|| Bits::zeros(n)).set(rule);
        }
    }

    fn narrow(&self, value: &str, acc: &mut Bits) {
        if self.by_value.is_empty() {
            return;
        }
        let hit = self.by_value.get(value);
        for (i, word) in acc.0.iter_mut().enumerate() {
            *word &= self.open.0[i] | hit.map_or(0, |b| b.0[i]);
        }
    }
}

impl Patterns {
    fn build<'a, I>(n: usize, per_rule: impl Iterator<Item = I>, field: &str) -> Result<Self, (usize, String)>
    where
        I: Iterator<Item = &'a str>,
    {
        let mut open = Bits::zeros(n);
        let mut patterns: Vec<&str> = Vec::new();
        let mut owners: Vec<Bits> = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (rule, list) in per_rule.enumerate() {
            let mut any = false;
            for p in list {
                any = true;
                let at = match seen.get(p) {
                    Some(at) => *at,
                    None => {
                        // Each pattern on its own first, so a bad one is reported with its rule.
                        regex::Regex::new(p).map_err(|e| (rule, format!("`{field}`: {e}")))?;
                        patterns.push(p);
                        owners.push(Bits::zeros(n));
                        seen.insert(p, patterns.len() - 1);
                        patterns.len() - 1
                    }
                };
                owners[at].set(rule);
            }
            if !any {
                open.set(rule);
            }
        }
        let set = if patterns.is_empty() {
            None
        } else {
            Some(RegexSet::new(&patterns).map_err(|e| (0, format!("`{field}`: {e}")))?)
        };
        Ok(Self { open, set, owners })
    }

    fn narrow(&self, value: Option<&str>, acc: &mut Bits) {
        let Some(set) = &self.set else { return };
        let mut hit = self.open.clone();
        if let Some(v) = value {
            for p in set.matches(v).iter() {
                for (word, owner) in hit.0.iter_mut().zip(&self.owners[p].0) {
                    *word |= owner;
                }
            }
        }
        for (word, h) in acc.0.iter_mut().zip(&hit.0) {
            *word &= h;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_iterate_in_order_across_words() {
        let mut b = Bits::zeros(200);
        for i in [0, 63, 64, 130, 199] {
            b.set(i);
        }
        assert_eq!(b.iter().collect::<Vec<_>>(), [0, 63, 64, 130, 199]);
        assert_eq!(Bits::ones(130).iter().collect::<Vec<_>>(), (0..130).collect::<Vec<_>>());
        assert_eq!(Bits::ones(64).iter().count(), 64);
        assert!(Bits::ones(0).is_empty());
        assert!(Bits::zeros(5).is_empty());
    }
}
