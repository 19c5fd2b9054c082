-- SPDX-License-Identifier: Apache-2.0
-- The REST API's guards over the rollout engine's tables (0010): a group that
-- an unfinished campaign targets cannot be deleted. Campaigns name groups in
-- their target filter (JSON), not by a foreign key, so a trigger refuses the
-- delete with the foreign-key SQLSTATE, which the API answers with 409.
-- (Artifacts are protected by campaigns.artifact_id's foreign key.)
CREATE FUNCTION api_group_in_use() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM campaigns
	           WHERE state NOT IN ('completed', 'cancelled', 'failed')
	             AND target_filter -> 'groups' ? OLD.group_id) THEN
		RAISE EXCEPTION 'group % is targeted by a campaign', OLD.group_id
			USING ERRCODE = 'foreign_key_violation';
	END IF;
	RETURN OLD;
END $$;

CREATE TRIGGER device_groups_in_use BEFORE DELETE ON device_groups
	FOR EACH ROW EXECUTE FUNCTION api_group_in_use();
