-- store.eligibleShiftsCachedSQL: the facility set passed in, the worker's
-- profession and documents and shiftcast.facility_version checked by
-- one-time initplans. Workers 101-103 of the challenge dataset are CNA, LVN,
-- RN holding the same documents; :fv, :docs and :facs (their eligible
-- facilities) are passed with -D by scripts/bench-statements.sh.
\set w random(101, 103)
SELECT s.id, s.facility_id, s.start, s."end" FROM "Shift" s WHERE s.profession = (SELECT w.profession FROM "Worker" w WHERE w.id = :w AND w.is_active AND w.profession::text = (ARRAY['CNA','LVN','RN'])[:w - 100]) AND (SELECT version FROM shiftcast.facility_version) = :fv::bigint AND COALESCE((SELECT wd.document_ids FROM shiftcast.worker_documents wd WHERE wd.worker_id = :w), '{}') = :docs::integer[] AND NOT s.is_deleted AND s.worker_id IS NULL AND s.facility_id = ANY (:facs::integer[]) AND (s.start, s.id) > ('0001-01-01'::timestamp, 0::integer) AND s.start >= '0001-01-01'::timestamp AND s.start < '9999-12-31'::timestamp ORDER BY s.start, s.id LIMIT 51;
