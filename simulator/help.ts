/** The `--help` text: every option of options.ts, with its environment variable and default. */
export const HELP = `Usage: npm run sim -- [run] [options]
       npm run sim -- subscribe --view-key <key> --view-secret <secret> [options]
       npm run sim -- help

"subscribe" prints a project's live stream as an application sees it (read-only MQTT with the
project's data-view key); "npm run sim -- subscribe --help" lists its options.

Simulates N devices of a project against a host: provisions them through the device
certificate API (or uses given tokens), connects them over MQTT (or raw TCP), reports attributes
(temperature, humidity, switch, location) on a schedule, applies attributes/push and
reports the new values, replies to commands and answers attributes/get.

Devices (one of):
  --project-key <key>     project key (MQTT password, Project-Key header)     env SIM_PROJECT_KEY
  --type-key <key>        provision devices "<prefix>-<n>" with this type key  env SIM_TYPE_KEY
                          (the type must allow auto-create)
  --tokens <file|list>    use these access tokens instead of provisioning:     env SIM_TOKENS
                          a file with one token a line, or a comma list
  --prefix <text>         device key prefix (default "sim-" + the first 8     env SIM_PREFIX
                          characters of the type key: one set per type)

Connection:
  --host <url>[,<url>…]   MQTT url (default mqtt://127.0.0.1:1883)             env SIM_HOST
                          or several, comma-separated (a cluster's nodes): a
                          device connects to the first that answers and on a lost
                          connection moves on to the next, round-robin; QoS 1
                          reports not yet acknowledged are sent again there
  --http <url>            HTTP url of the API (default http://127.0.0.1:8080)  env SIM_HTTP
  --protocol mqtt|ws|tcp  MQTT over TCP, MQTT over WebSocket at               env SIM_PROTOCOL
                          ws://<http host:port>/mqtt, or raw TCP devices (DTUs)
                          on --host tcp://host:port (default tcp://127.0.0.1:28801):
                          login "<project key>&<token>", then one frame per report
                          (default mqtt)
  --mqtt-version 4|5      MQTT 3.1.1 (4) or 5 (default 4)                      env SIM_MQTT_VERSION
  --tcp-format hex|text|json                                                   env SIM_TCP_FORMAT
                          raw TCP frames: json {"temperature",…} (default),
                          text T=21.5;H=40.2;S=1, or hex AA 01 <t×10> <h×10> <sw> <sum>.
                          A pushed JSON object is applied and answered with the new
                          values; other pushed bytes are echoed back
  --tcp-heartbeat <text>  raw TCP: send this keep-alive every 30 s             env SIM_TCP_HEARTBEAT

Gateways (device-protocol.md §8):
  --gateway               each device is a gateway (its type has conn_type 3)  env SIM_GATEWAY=1
                          speaking for sub-devices at addresses 1…K over one
                          MQTT connection: gateway/connect, one gateway/attributes
                          message for all of them per interval, attributes/get,
                          and answers to pushes and commands for each
  --sub-devices <k>       sub-devices per gateway, 1–100 (default 3)           env SIM_SUB_DEVICES
  --api-token <token>     with --sub-type and --type-key: before connecting,   env SIM_API_TOKEN
                          create sub-devices "<prefix>-<n>-<k>" of that type
                          and attach them to gateway <prefix>-<n> at address k
                          (a project API token from POST /api/v1/access_token);
                          without it they must already be attached
  --sub-type <type id>    the sub-device type (conn_type 2) for --api-token    env SIM_SUB_TYPE

Load:
  --devices <n>           number of devices (default 1; with --tokens, the     env SIM_DEVICES
                          number of tokens unless given)
  --rate <n>              reports per device per second, may be fractional     env SIM_RATE
                          (default 0.2)
  --qos 0|1               QoS of the reports (default 0)                       env SIM_QOS
  --duration <s>          seconds to run, 0 = until Ctrl-C (default 0)         env SIM_DURATION
  --ramp-up <s>           spread the first connects over this many seconds     env SIM_RAMP_UP
                          (default 0)

Output:
  --quiet                 no live status line, only the summary                env SIM_QUIET=1
  -h, --help              print this text

A flag wins over its environment variable, which wins over the default.
Certificate requests answered 429 are retried after the server's Retry-After
(all requests pause, with jitter; giving up after 120 s without a certificate).
Exit code: 0 when every device asked for connected (devices not started because
the run was stopped first do not count), 1 when fewer did (a line on stderr says
how many and why), 2 on bad flags.

Examples:
  npm run sim -- --project-key PK --type-key TK --devices 100 --rate 1 --duration 60
  npm run sim -- --project-key PK --tokens tokens.txt --qos 1 --ramp-up 10
  npm run sim -- --project-key PK --tokens t1,t2 --protocol ws --mqtt-version 5
  npm run sim -- --project-key PK --type-key TK --protocol tcp --tcp-format hex --host tcp://127.0.0.1:28801
  npm run sim -- --project-key PK --type-key GW_TK --gateway --sub-devices 8 --api-token T --sub-type SUB_TYPE_ID
`;
