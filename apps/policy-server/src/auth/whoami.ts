import { z } from 'zod';

/** GET /whoami: who the bearer token is. */
export const WhoAmI = z.object({
  tokenId: z.string(),
  name: z.string(),
  role: z.enum(['viewer', 'operator', 'admin']),
});
export type WhoAmI = z.infer<typeof WhoAmI>;
