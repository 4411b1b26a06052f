/* The instance's region from EC2's metadata service (IMDSv2): install's last fallback, off EC2 none. */

/** The region from IMDSv2, or undefined off EC2 (1 s budget per request). */
export async function regionFromInstanceMetadata(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const base = env.AWS_EC2_METADATA_SERVICE_ENDPOINT ?? 'http://169.254.169.254';
  try {
    const token = await fetch(`${base}/latest/api/token`, {
      method: 'PUT',
      headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
      signal: AbortSignal.timeout(1000),
    });
    if (!token.ok) return undefined;
    const r = await fetch(`${base}/latest/meta-data/placement/region`, {
      headers: { 'X-aws-ec2-metadata-token': await token.text() },
      signal: AbortSignal.timeout(1000),
    });
    const region = r.ok ? (await r.text()).trim() : '';
    return /^[a-z]{2}(-[a-z]+)+-\d+$/.test(region) ? region : undefined;
  } catch {
    return undefined;
  }
}
