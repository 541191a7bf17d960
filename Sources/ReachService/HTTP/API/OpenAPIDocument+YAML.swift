// Written by scripts/openapi-embed from deploy/openapi.yaml; do not edit.
extension OpenAPIDocument {
    public static let yaml = #"""
openapi: 3.1.0
info:
  title: reachd operator API
  version: 0.1.0
  description: |
    The HTTP API of reachd (SPEC §7). Every `/v1` route needs `Authorization: Bearer <token>`;
    tokens come from configuration (`auth.tokens`) with scope `read` or `write` (`write` includes `read`).
    Missing or unknown token: 401; too little scope: 403; body over `http.max_body_bytes`: 413;
    over the token's rate (`http.token_rate_per_second`): 429 with `Retry-After`.
    Every error is `{"error": {"code", "message"[, "field"]}}`. Lists answer `{"items": [...], "next": cursor|null}`;
    pass `next` back as `after` for the following page. Every write call is recorded in `reach.audit`.
  license:
    name: Proprietary
    identifier: LicenseRef-Proprietary
servers:
  - url: http://127.0.0.1:8080
security:
  - bearer: []
tags:
  - name: health
  - name: campaigns
  - name: segments
  - name: triggers
  - name: dead-letters
  - name: inbox
  - name: channels
  - name: audit
paths:
  /healthz:
    get:
      tags: [health]
      operationId: health
      summary: The process is up
      security: []
      responses:
        "200":
          description: Up
          content:
            application/json:
              schema: {type: object, properties: {status: {type: string, const: ok}}, required: [status]}
  /readyz:
    get:
      tags: [health]
      operationId: ready
      summary: Kafka, PostgreSQL and Redis are reachable
      security: []
      responses:
        "200": {$ref: "#/components/responses/Readiness"}
        "503": {$ref: "#/components/responses/Readiness"}
  /metrics:
    get:
      tags: [health]
      operationId: metrics
      summary: Prometheus text exposition
      security: []
      responses:
        "200":
          description: Metrics
          content:
            text/plain:
              schema: {type: string}
  /openapi.json:
    get:
      tags: [health]
      operationId: openapi
      summary: This document as JSON
      security: []
      responses:
        "200":
          description: The OpenAPI document
          content:
            application/json:
              schema: {type: object}
  /console:
    get:
      tags: [health]
      operationId: console
      summary: The operator web console (static HTML; /console/console.js and /console/console.css beside it)
      description: Served without a token under a strict Content-Security-Policy; the page calls /v1 with the token the operator pastes in.
      security: []
      responses:
        "200":
          description: The console's page
          content:
            text/html:
              schema: {type: string}
  /v1/campaigns:
    post:
      tags: [campaigns]
      operationId: createCampaign
      summary: Validate a campaign task (SPEC §3.1, without kind) and publish it on the tasks topic
      description: A second POST of an existing id publishes nothing and answers `existing` true with the campaign's state.
      x-scope: write
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/CampaignTask"}
      responses:
        "202":
          description: Accepted (published, or already existing)
          headers:
            Location: {schema: {type: string}, description: "/v1/campaigns/{id}"}
          content:
            application/json:
              schema: {$ref: "#/components/schemas/CampaignAccepted"}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "413": {$ref: "#/components/responses/TooLarge"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
    get:
      tags: [campaigns]
      operationId: listCampaigns
      summary: Campaigns, newest first
      x-scope: read
      parameters:
        - name: state
          in: query
          schema: {$ref: "#/components/schemas/CampaignState"}
        - name: parent
          in: query
          description: only the runs of this recurring series
          schema: {type: string}
        - {$ref: "#/components/parameters/since"}
        - {$ref: "#/components/parameters/limit"}
        - {$ref: "#/components/parameters/after"}
      responses:
        "200":
          description: A page of campaigns (without the per-channel breakdown)
          content:
            application/json:
              schema:
                allOf:
                  - {$ref: "#/components/schemas/Page"}
                  - properties: {items: {type: array, items: {$ref: "#/components/schemas/Campaign"}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
  /v1/campaigns/{id}:
    parameters:
      - {$ref: "#/components/parameters/campaignID"}
    get:
      tags: [campaigns]
      operationId: getCampaign
      summary: State, counters, per-status and per-channel counts, progress and throughput
      description: The breakdown from delivery rows is cached per campaign for a second (a refresh runs behind answers up to 5 s old); a change of state is counted afresh.
      x-scope: read
      responses:
        "200":
          description: The campaign
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Campaign"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
  /v1/campaigns/{id}/pause:
    parameters:
      - {$ref: "#/components/parameters/campaignID"}
    post:
      tags: [campaigns]
      operationId: pauseCampaign
      summary: Pause (no new provider requests within 2 s; progress kept)
      x-scope: write
      responses: &control
        "200":
          description: Applied
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ControlResult"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {$ref: "#/components/responses/Conflict"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
  /v1/campaigns/{id}/resume:
    parameters:
      - {$ref: "#/components/parameters/campaignID"}
    post:
      tags: [campaigns]
      operationId: resumeCampaign
      summary: Resume where it stopped
      x-scope: write
      responses: *control
  /v1/campaigns/{id}/cancel:
    parameters:
      - {$ref: "#/components/parameters/campaignID"}
    post:
      tags: [campaigns]
      operationId: cancelCampaign
      summary: Cancel (remaining users end skipped/cancelled)
      x-scope: write
      responses: *control
  /v1/segments/preview:
    post:
      tags: [segments]
      operationId: previewSegment
      summary: Count a segment and sample up to 20 user ids; sends nothing
      description: The count runs under a statement timeout (`http.preview_timeout_ms`); past it the answer is 503 `timeout`.
      x-scope: read
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              required: [segment]
              properties:
                segment: {$ref: "#/components/schemas/Segment"}
      responses:
        "200":
          description: The count and a sample
          content:
            application/json:
              schema:
                type: object
                required: [count, sample]
                properties:
                  count: {type: integer, minimum: 0}
                  sample: {type: array, maxItems: 20, items: {type: string}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "413": {$ref: "#/components/responses/TooLarge"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
  /v1/triggers:
    get:
      tags: [triggers]
      operationId: listTriggers
      summary: Trigger rules in id order
      x-scope: read
      parameters:
        - name: event
          in: query
          schema: {type: string}
        - {$ref: "#/components/parameters/limit"}
        - {$ref: "#/components/parameters/after"}
      responses:
        "200":
          description: A page of rules
          content:
            application/json:
              schema:
                allOf:
                  - {$ref: "#/components/schemas/Page"}
                  - properties: {items: {type: array, items: {$ref: "#/components/schemas/Trigger"}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
    post:
      tags: [triggers]
      operationId: createTrigger
      summary: Create a rule (validated, templates compiled); applies at once on this instance, within 2 s on others
      x-scope: write
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/TriggerInput"}
      responses:
        "201":
          description: Created
          headers:
            Location: {schema: {type: string}}
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Trigger"}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "409": {$ref: "#/components/responses/Conflict"}
        "413": {$ref: "#/components/responses/TooLarge"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
  /v1/triggers/{id}:
    parameters:
      - name: id
        in: path
        required: true
        schema: {type: string}
    get:
      tags: [triggers]
      operationId: getTrigger
      summary: One rule
      x-scope: read
      responses:
        "200":
          description: The rule
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Trigger"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
    put:
      tags: [triggers]
      operationId: putTrigger
      summary: Replace a rule, or create it
      x-scope: write
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/TriggerInput"}
      responses:
        "200":
          description: Replaced
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Trigger"}
        "201":
          description: Created
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Trigger"}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "413": {$ref: "#/components/responses/TooLarge"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
    delete:
      tags: [triggers]
      operationId: deleteTrigger
      summary: Delete a rule (its pending retries end skipped/cancelled)
      x-scope: write
      responses:
        "200":
          description: Deleted
          content:
            application/json:
              schema:
                type: object
                required: [id, deleted]
                properties: {id: {type: string}, deleted: {type: boolean}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
  /v1/dead-letters:
    get:
      tags: [dead-letters]
      operationId: listDeadLetters
      summary: Dead letters, newest first
      x-scope: read
      parameters:
        - {name: campaign, in: query, schema: {type: string}}
        - {name: channel, in: query, schema: {type: string}}
        - {name: source, in: query, schema: {type: string, enum: [delivery, input]}}
        - {$ref: "#/components/parameters/since"}
        - {$ref: "#/components/parameters/limit"}
        - {$ref: "#/components/parameters/after"}
      responses:
        "200":
          description: A page of dead letters
          content:
            application/json:
              schema:
                allOf:
                  - {$ref: "#/components/schemas/Page"}
                  - properties: {items: {type: array, items: {$ref: "#/components/schemas/DeadLetter"}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
  /v1/dead-letters/replay:
    post:
      tags: [dead-letters]
      operationId: replayDeadLetters
      summary: Re-queue dead deliveries by ids or filters (at least one, or all true); same code as `reachd dlq replay`
      x-scope: write
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              properties:
                ids: {type: array, minItems: 1, maxItems: 10000, items: {type: integer, minimum: 1}}
                campaign: {type: string}
                channel: {type: string}
                since: {type: string, format: date-time}
                limit: {type: integer, minimum: 1, maximum: 100000, default: 10000}
                all: {type: boolean}
      responses:
        "200":
          description: How many deliveries were re-queued
          content:
            application/json:
              schema:
                type: object
                required: [replayed]
                properties: {replayed: {type: integer, minimum: 0}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "413": {$ref: "#/components/responses/TooLarge"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
  /v1/inbox/{user_id}:
    parameters:
      - {name: user_id, in: path, required: true, schema: {type: string}}
    get:
      tags: [inbox]
      operationId: listInbox
      summary: A user's in-app messages, newest first, and the unread count
      x-scope: read
      parameters:
        - {name: unread, in: query, schema: {type: boolean}, description: only unread messages}
        - {$ref: "#/components/parameters/limit"}
        - {$ref: "#/components/parameters/after"}
      responses:
        "200":
          description: A page of messages
          content:
            application/json:
              schema:
                allOf:
                  - {$ref: "#/components/schemas/Page"}
                  - properties:
                      items: {type: array, items: {$ref: "#/components/schemas/InboxMessage"}}
                      unread: {type: integer, minimum: 0}
                    required: [unread]
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
  /v1/inbox/{user_id}/{id}/read:
    parameters:
      - {name: user_id, in: path, required: true, schema: {type: string}}
      - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
    post:
      tags: [inbox]
      operationId: markInboxRead
      summary: Mark a message read; idempotent (read_at keeps the first read)
      x-scope: write
      responses:
        "200":
          description: The message
          content:
            application/json:
              schema: {$ref: "#/components/schemas/InboxMessage"}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
  /v1/channels:
    get:
      tags: [channels]
      operationId: listChannels
      summary: Configured channels and their cluster-wide switch
      x-scope: read
      responses:
        "200":
          description: Every configured channel
          content:
            application/json:
              schema:
                allOf:
                  - {$ref: "#/components/schemas/Page"}
                  - properties: {items: {type: array, items: {$ref: "#/components/schemas/Channel"}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
  /v1/channels/{name}/pause:
    parameters:
      - {$ref: "#/components/parameters/channelName"}
    post:
      tags: [channels]
      operationId: pauseChannel
      summary: Pause a channel cluster-wide; its sends are deferred through the delay queue, never dropped
      x-scope: write
      responses: &switch
        "200":
          description: The switch's state
          content:
            application/json:
              schema: {$ref: "#/components/schemas/ChannelSwitch"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
  /v1/channels/{name}/resume:
    parameters:
      - {$ref: "#/components/parameters/channelName"}
    post:
      tags: [channels]
      operationId: resumeChannel
      summary: Resume a paused channel
      x-scope: write
      responses: *switch
  /v1/audit:
    get:
      tags: [audit]
      operationId: listAudit
      summary: Write calls as recorded in reach.audit, newest first (write scope)
      x-scope: write
      parameters:
        - {name: token, in: query, schema: {type: string}, description: token name}
        - {name: target, in: query, schema: {type: string}}
        - {$ref: "#/components/parameters/since"}
        - {$ref: "#/components/parameters/limit"}
        - {$ref: "#/components/parameters/after"}
      responses:
        "200":
          description: A page of audit rows
          content:
            application/json:
              schema:
                allOf:
                  - {$ref: "#/components/schemas/Page"}
                  - properties: {items: {type: array, items: {$ref: "#/components/schemas/AuditEntry"}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "429": {$ref: "#/components/responses/RateLimited"}
        "503": {$ref: "#/components/responses/Unavailable"}
components:
  securitySchemes:
    bearer:
      type: http
      scheme: bearer
      description: A token from auth.tokens (token_env / token_file); scope read or write.
  parameters:
    limit:
      name: limit
      in: query
      schema: {type: integer, minimum: 1, maximum: 500, default: 50}
    after:
      name: after
      in: query
      description: The `next` of the previous page
      schema: {type: string}
    since:
      name: since
      in: query
      description: RFC 3339; only rows at or after it
      schema: {type: string, format: date-time}
    campaignID:
      name: id
      in: path
      required: true
      description: A campaign id; a recurring campaign's run is `<id>@<run time, RFC 3339 UTC>`
      schema: {type: string}
    channelName:
      name: name
      in: path
      required: true
      schema: {type: string}
  responses:
    Readiness:
      description: >-
        Readiness of each dependency, from the state reachd keeps (probed every 500 ms; a probe
        waiting longer than 1.5 s counts as down), so it answers at once even while a server hangs.
        Only names and up/down: the error itself is logged and in reach_dependency_up.
      content:
        application/json:
          schema:
            type: object
            required: [ready, checks]
            properties:
              ready: {type: boolean}
              checks:
                type: object
                additionalProperties:
                  type: object
                  required: [ok]
                  properties: {ok: {type: boolean}}
    BadRequest:
      description: Malformed JSON, a wrong type, an unknown field or an invalid value; `field` names where
      content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
    Unauthorized:
      description: Missing or unknown bearer token
      headers:
        WWW-Authenticate: {schema: {type: string}}
      content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
    Forbidden:
      description: The token's scope is too small
      content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
    NotFound:
      description: No such object
      content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
    Conflict:
      description: The object's state does not allow this (or the id is taken)
      content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
    TooLarge:
      description: The body is larger than http.max_body_bytes
      content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
    RateLimited:
      description: Too many requests for this token
      headers:
        Retry-After: {schema: {type: integer}, description: seconds}
      content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
    Unavailable:
      description: A dependency is down or too slow; retry
      content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
  schemas:
    Error:
      type: object
      required: [error]
      properties:
        error:
          type: object
          required: [code, message]
          properties:
            code: {type: string, examples: [invalid_request, unauthorized, forbidden, not_found, conflict, payload_too_large, rate_limited, timeout, unavailable]}
            message: {type: string}
            field: {type: string, description: path of the offending field}
    Page:
      type: object
      required: [items, next]
      properties:
        items: {type: array}
        next: {type: [string, "null"]}
    CampaignState:
      type: string
      enum: [scheduled, running, paused, done, cancelled, failed]
    Segment:
      description: Exactly one of id, user_ids (≤ 10 000) or rule (SPEC §4.3)
      type: object
      additionalProperties: false
      properties:
        id: {type: string}
        user_ids: {type: array, maxItems: 10000, items: {type: string}}
        rule: {$ref: "#/components/schemas/Rule"}
    Rule:
      description: "{all: [...]}, {any: [...]}, {not: rule} or {attr, op, value}; ops eq neq in gt gte lt lte exists contains"
      type: object
    Template:
      type: object
      additionalProperties: false
      required: [body]
      properties:
        title: {type: string}
        body: {type: string}
        channels:
          type: object
          additionalProperties:
            type: object
            additionalProperties: false
            properties: {title: {type: string}, body: {type: string}}
    CampaignTask:
      type: object
      additionalProperties: false
      required: [campaign_id, segment, channels, template]
      properties:
        kind: {type: string, const: campaign}
        campaign_id: {type: string, pattern: "^[A-Za-z0-9._:-]{1,128}$"}
        name: {type: string}
        segment: {$ref: "#/components/schemas/Segment"}
        channels:
          type: object
          additionalProperties: {type: integer, minimum: 0}
        fallback: {type: array, items: {type: string}}
        template: {$ref: "#/components/schemas/Template"}
        data: {type: object}
        schedule:
          type: object
          additionalProperties: false
          description: absent = now; at; delay_seconds; or cron (five fields) with timezone
          properties:
            at: {type: string, format: date-time}
            delay_seconds: {type: integer, minimum: 0}
            cron: {type: string, examples: ["0 9 * * 1"]}
            timezone: {type: string, examples: [Asia/Shanghai]}
        expires_at: {type: string, format: date-time}
        quiet_hours: {type: boolean, default: true}
    CampaignAccepted:
      type: object
      required: [campaign_id, existing, state]
      properties:
        campaign_id: {type: string}
        existing: {type: boolean}
        state: {type: string, description: accepted, or the existing campaign's state}
        topic: {type: string}
        partition: {type: integer}
        offset: {type: integer}
    Counters:
      type: object
      required: [targeted, sent, skipped, failed, dead]
      properties:
        targeted: {type: integer}
        sent: {type: integer}
        skipped: {type: integer}
        failed: {type: integer}
        dead: {type: integer}
    Campaign:
      type: object
      required: [id, state, counters, created_at, progress]
      properties:
        id: {type: string}
        name: {type: [string, "null"]}
        state: {$ref: "#/components/schemas/CampaignState"}
        error: {type: [string, "null"]}
        created_at: {type: string, format: date-time}
        scheduled_at: {type: [string, "null"], format: date-time}
        expires_at: {type: [string, "null"], format: date-time}
        started_at: {type: [string, "null"], format: date-time}
        finished_at: {type: [string, "null"], format: date-time}
        recurring: {type: boolean, description: "a series (schedule.cron): scheduled_at is its next run; its runs are campaigns <id>@<time>"}
        parent_id: {type: [string, "null"], description: the series this run belongs to}
        counters: {$ref: "#/components/schemas/Counters"}
        statuses:
          description: Delivery rows by status (detail only)
          type: object
          additionalProperties: {type: integer}
        reasons:
          description: "Skipped and dead rows by `status/reason` (detail only)"
          type: object
          additionalProperties: {type: integer}
        channels:
          description: Delivery rows by channel, then status (detail only)
          type: object
          additionalProperties: {type: object, additionalProperties: {type: integer}}
        progress:
          type: object
          required: [done, rows, total]
          properties:
            done: {type: integer, description: users in a terminal state}
            rows: {type: integer, description: users with a row so far}
            total: {type: [integer, "null"], description: "known for listed users, for a campaign cut into shards (counted at the cut), or once finished"}
        shards:
          type: object
          description: "Detail view of a campaign cut into shards (pipeline.shards): every instance can work a shard; counters and progress are their sum."
          required: [total, done, running]
          properties:
            total: {type: integer}
            done: {type: integer, description: shards every user of which has a row}
            running: {type: integer, description: shards whose lease an instance holds now}
        throughput_per_second: {type: [number, "null"], description: terminal users per second since the start}
    ControlResult:
      type: object
      required: [campaign_id, state]
      properties:
        campaign_id: {type: string}
        state: {$ref: "#/components/schemas/CampaignState"}
    TriggerInput:
      type: object
      additionalProperties: false
      required: [event, channels, template]
      properties:
        id: {type: string, pattern: "^[A-Za-z0-9._-]{1,100}$", description: required on POST; on PUT it must match the path}
        event: {type: string, minLength: 1, maxLength: 256}
        channels: {type: object, additionalProperties: {type: integer, minimum: 0}}
        fallback: {type: array, items: {type: string}}
        template: {$ref: "#/components/schemas/Template"}
        delay_seconds: {type: integer, minimum: 0, maximum: 31536000, default: 0}
        quiet_hours: {type: boolean, default: true}
        enabled: {type: boolean, default: true}
    Trigger:
      type: object
      required: [id, event, channels, fallback, template, delay_seconds, quiet_hours, enabled, updated_at]
      properties:
        id: {type: string}
        event: {type: string}
        channels: {type: object, additionalProperties: {type: integer}}
        fallback: {type: array, items: {type: string}}
        template: {$ref: "#/components/schemas/Template"}
        delay_seconds: {type: integer}
        quiet_hours: {type: boolean}
        enabled: {type: boolean}
        updated_at: {type: string, format: date-time}
    DeadLetter:
      type: object
      required: [id, reason, source, attempts, failed_at]
      properties:
        id: {type: integer}
        reason: {type: string}
        error: {type: [string, "null"]}
        source: {type: string, enum: [delivery, input]}
        campaign_id: {type: [string, "null"]}
        user_id: {type: [string, "null"]}
        channel: {type: [string, "null"]}
        attempts: {type: integer}
        failed_at: {type: string, format: date-time}
        replayed_at: {type: [string, "null"], format: date-time}
        topic: {type: [string, "null"]}
        partition: {type: [integer, "null"]}
        offset: {type: [integer, "null"]}
        payload: {description: the message (delivery) or the raw input}
    InboxMessage:
      type: object
      required: [id, user_id, campaign_id, title, body, created_at, read_at]
      properties:
        id: {type: integer}
        user_id: {type: string}
        campaign_id: {type: string}
        title: {type: string}
        body: {type: string}
        created_at: {type: string, format: date-time}
        read_at: {type: [string, "null"], format: date-time}
    Channel:
      type: object
      required: [name, provider, paused, paused_since]
      properties:
        name: {type: string}
        provider: {type: string, enum: [http, smtp, inbox, log]}
        paused: {type: boolean}
        paused_since: {type: [string, "null"], format: date-time}
        breaker:
          type: string
          enum: [closed, open, half_open]
          description: the circuit breaker of the instance that answered (breakers are per process)
    ChannelSwitch:
      type: object
      required: [name, paused, changed]
      properties:
        name: {type: string}
        paused: {type: boolean}
        changed: {type: boolean, description: false when it already was in that state}
    AuditEntry:
      type: object
      required: [id, at, method, route, status]
      properties:
        id: {type: integer}
        at: {type: string, format: date-time}
        token_name: {type: [string, "null"], description: null when no valid token was sent}
        client: {type: [string, "null"]}
        method: {type: string}
        route: {type: string, description: "the route template, e.g. /v1/campaigns/{id}/pause"}
        target: {type: [string, "null"]}
        status: {type: integer}
        body: {type: [string, "null"], description: the request body with phone numbers, e-mails and secrets masked}
"""#
}
