-- Push rules stored before they were written in the spec's form hold
-- {"set_tweak":...,"value":null} (mautrix's marshaller writes the null,
-- which matrix-js-sdk reads as no highlight and nheko refuses): drop it,
-- as push.Marshal does for new writes. Object keys were written sorted, so
-- the null always follows a comma.
UPDATE account_data SET content = REPLACE(content, ',"value":null', '')
WHERE room_id = '' AND data_type = 'm.push_rules' AND content LIKE '%"value":null%';
