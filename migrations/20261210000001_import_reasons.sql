-- An import problem's reason as data (code and values), so the pages can say it in
-- their language; `reason` keeps the English sentence (older rows have only that).
ALTER TABLE import_problems ADD COLUMN detail JSONB;
