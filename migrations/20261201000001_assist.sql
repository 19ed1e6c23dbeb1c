-- Model suggestions on the annotation page, per round (issue 18).
-- A round's mode: off (no suggestions), shown (visible, nothing ticked), prefilled
-- (suggestions ticked, the annotator confirms or corrects).
ALTER TABLE rounds ADD COLUMN assist TEXT NOT NULL DEFAULT 'off'
    CHECK (assist IN ('off', 'shown', 'prefilled'));
-- Whether this item gets the round's suggestions: items double-assigned for agreement
-- do not, unless the engineer asked for them.
ALTER TABLE round_items ADD COLUMN assisted BOOLEAN NOT NULL DEFAULT false;
-- What the serving model suggested, computed when the round was composed: keywords
-- with probability, level and highlight spans, as the analysis API answers.
ALTER TABLE round_items ADD COLUMN suggestion JSONB;
ALTER TABLE round_items ADD COLUMN suggestion_version_id BIGINT REFERENCES model_versions(id);
-- What the annotator was shown and did with it: the round's mode, the version whose
-- suggestions were shown, and which suggested keywords were accepted (same level),
-- changed (other level) or removed, and which were added by hand. NULL: unassisted.
ALTER TABLE annotations ADD COLUMN assist JSONB;
