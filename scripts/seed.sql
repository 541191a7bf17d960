-- Demo data: 100 000 recipients and two segments. Idempotent.
INSERT INTO reach.recipients (user_id, name, phone, email, push_token, timezone, locale, attrs)
SELECT 'u' || lpad(g::text, 6, '0'),
       'User ' || g,
       CASE WHEN g % 10 = 0 THEN NULL ELSE '138' || lpad(g::text, 8, '0') END,
       'user' || g || '@example.com',
       CASE WHEN g % 5 < 3 THEN 'push-token-' || g END,
       (ARRAY['Asia/Shanghai', 'UTC', 'America/New_York', 'Europe/Berlin'])[1 + g % 4],
       (ARRAY['zh-CN', 'en-US'])[1 + g % 2],
       jsonb_build_object('level', g % 6, 'city', (ARRAY['Shanghai', 'Beijing', 'Shenzhen', 'Hangzhou'])[1 + g % 4],
                          'tags', CASE WHEN g % 7 = 0 THEN '["vip"]'::jsonb ELSE '[]'::jsonb END)
FROM generate_series(1, 100000) g
ON CONFLICT (user_id) DO NOTHING;

INSERT INTO reach.preferences (user_id, channel, opted_out)
SELECT 'u' || lpad(g::text, 6, '0'), CASE WHEN g % 2 = 0 THEN 'sms' ELSE '*' END, true
FROM generate_series(33, 100000, 33) g
ON CONFLICT (user_id, channel) DO NOTHING;

INSERT INTO reach.segments (id, name, rule) VALUES
  ('everyone', 'Every recipient', NULL),
  ('vip-shanghai', 'VIPs in Shanghai', '{"all": [{"attr": "city", "op": "eq", "value": "Shanghai"}, {"any": [{"attr": "level", "op": "gte", "value": 4}, {"attr": "tags", "op": "contains", "value": "vip"}]}]}')
ON CONFLICT (id) DO NOTHING;

INSERT INTO reach.segment_members (segment_id, user_id)
SELECT 'everyone', user_id FROM reach.recipients
ON CONFLICT DO NOTHING;

ANALYZE reach.recipients;
ANALYZE reach.segment_members;
ANALYZE reach.preferences;
