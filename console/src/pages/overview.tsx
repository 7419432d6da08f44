/** Overview: the device and alarm statistics as tiles, refreshed when devices go on- or offline or alarms change. */
import { useApp, useInterval, useLive, useThrottled } from '../ctx.ts';
import type { Key } from '../i18n.ts';
import { ErrorText, LiveBadge, useGet } from './common.tsx';

interface DevicesStat {
  device_total: number;
  online_device_total: number;
  offline_device_total: number;
  active_device_total: number;
  inactive_device_total: number;
  alarm_device_total: number;
}
interface AlarmStat {
  alarm_1_total: number;
  alarm_2_total: number;
  alarm_3_total: number;
  normal_total: number;
}

const DEVICE_TILES: [Key, keyof DevicesStat][] = [
  ['statDevices', 'device_total'],
  ['statOnline', 'online_device_total'],
  ['statOffline', 'offline_device_total'],
  ['statActive', 'active_device_total'],
  ['statInactive', 'inactive_device_total'],
  ['statInAlarm', 'alarm_device_total'],
];
const ALARM_TILES: [Key, keyof AlarmStat][] = [
  ['statAlarm1', 'alarm_1_total'],
  ['statAlarm2', 'alarm_2_total'],
  ['statAlarm3', 'alarm_3_total'],
  ['statNormal', 'normal_total'],
];

function Tile({ label, value }: { label: string; value: number | undefined }) {
  return (
    <div role="group" aria-label={label} class="tile">
      <div class="tile-label" aria-hidden="true">
        {label}
      </div>
      <div class="tile-value">{value ?? '…'}</div>
    </div>
  );
}

export function OverviewPage() {
  const { t } = useApp();
  const devices = useGet<DevicesStat>('/api/v1/devices_stat');
  const alarms = useGet<AlarmStat>('/api/v1/devices_alarm_stat');
  const refresh = () => {
    devices.reload();
    alarms.reload();
  };
  // Events come in bursts (a thousand devices reconnecting): refresh at most every 300 ms. Also when the stream
  // opens: what changed between the first read and then came as no event.
  const refreshSoon = useThrottled(refresh, 300);
  const live = useLive(['online', 'alarm'], undefined, refreshSoon, refreshSoon);
  useInterval(refresh, live ? 60_000 : 5_000);
  return (
    <section aria-labelledby="overview-h">
      <h1 id="overview-h">
        {t('overview')} <LiveBadge open={live} />
      </h1>
      <ErrorText error={devices.error || alarms.error} />
      <h2>{t('deviceStats')}</h2>
      <div class="tiles">
        {DEVICE_TILES.map(([k, f]) => (
          <Tile key={k} label={t(k)} value={devices.data?.[f]} />
        ))}
      </div>
      <h2>{t('alarmStats')}</h2>
      <div class="tiles">
        {ALARM_TILES.map(([k, f]) => (
          <Tile key={k} label={t(k)} value={alarms.data?.[f]} />
        ))}
      </div>
    </section>
  );
}
