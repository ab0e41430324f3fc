-- The price history: one product_changes row per changed audited field, and one `listed`,
-- `delisted` or `relisted` row per life-cycle event, written in the same transaction as the
-- change, each announced with pg_notify('product_changes', '{"id": …, "product_id": …}').
--
-- Trigger arguments (set by `python -m christmas_spiders.storage upgrade` from configuration):
--   TG_ARGV[0]     the suspicious price ratio: a price change by this factor or more is flagged
--   TG_ARGV[1..]   the audited columns of `products`
-- The crawl run that caused a change comes from the transaction-local setting
-- `christmas.crawl_run_id` (empty or unset outside a crawl).

CREATE OR REPLACE FUNCTION record_product_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ratio numeric := TG_ARGV[0]::numeric;
    run_id bigint := nullif(current_setting('christmas.crawl_run_id', true), '')::bigint;
    old_row jsonb;
    new_row jsonb := to_jsonb(NEW);
    audited text[] := TG_ARGV[1:TG_NARGS - 1];
    snapshot jsonb;
    event text;
    column_name text;
    old_value text;
    new_value text;
    flags text[];
    change_id bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        event := 'listed';
    ELSE
        old_row := to_jsonb(OLD);
        IF OLD.delisted_at IS NULL AND NEW.delisted_at IS NOT NULL THEN
            event := 'delisted';
        ELSIF OLD.delisted_at IS NOT NULL AND NEW.delisted_at IS NULL THEN
            event := 'relisted';
        END IF;
    END IF;

    IF event IS NOT NULL THEN
        SELECT coalesce(jsonb_object_agg(name, new_row -> name), '{}'::jsonb)
          INTO snapshot FROM unnest(audited) AS name;
        INSERT INTO product_changes (product_id, kind, new_value, crawl_run_id)
        VALUES (NEW.id, event, snapshot::text, run_id)
        RETURNING id INTO change_id;
        PERFORM pg_notify('product_changes', json_build_object(
            'id', change_id, 'product_id', NEW.id, 'kind', event)::text);
    END IF;

    IF TG_OP = 'UPDATE' THEN
        FOREACH column_name IN ARRAY audited LOOP
            old_value := old_row ->> column_name;
            new_value := new_row ->> column_name;
            CONTINUE WHEN old_value IS NOT DISTINCT FROM new_value;
            flags := '{}';
            IF column_name IN ('price', 'regular_price')
               AND old_value::numeric > 0 AND new_value::numeric > 0
               AND greatest(old_value::numeric, new_value::numeric)
                   >= ratio * least(old_value::numeric, new_value::numeric) THEN
                flags := ARRAY['suspicious'];
            END IF;
            INSERT INTO product_changes
                (product_id, kind, field, old_value, new_value, crawl_run_id, flags)
            VALUES (NEW.id, 'changed', column_name, old_value, new_value, run_id, flags)
            RETURNING id INTO change_id;
            PERFORM pg_notify('product_changes', json_build_object(
                'id', change_id, 'product_id', NEW.id, 'kind', 'changed',
                'field', column_name)::text);
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;
