"""Saving and deleting combined rules (the rules page's actions): the rule and its conditions
change together in one transaction, validated by the models; the ingest workers pick the change
up within RULES_TTL_S. How alerts are evaluated is twins/combined_alerts.py's."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from twins.models import CombinedRule, RuleCondition


def save_combined_rule(rule: CombinedRule, conditions: Sequence[RuleCondition], removed: Sequence[RuleCondition] = ()) -> CombinedRule:
    """Store a rule with its kept or new ``conditions``; ``removed`` ones are deleted. Nothing is
    stored when any part is invalid (ValidationError)."""
    with transaction.atomic():
        rule.full_clean()
        rule.save()
        for condition in removed:
            if condition.pk is not None:
                condition.delete()
        for condition in conditions:
            condition.rule = rule
            condition.full_clean()
            condition.save()
    return rule


def delete_combined_rule(rule_id: int) -> str | None:
    """Delete a rule (its conditions go with it; its alerts stay, without the rule); its name, or None when it was gone."""
    with transaction.atomic():
        rule = CombinedRule.objects.select_for_update().filter(id=rule_id).first()
        if rule is None:
            return None
        rule.delete()
    return rule.name
