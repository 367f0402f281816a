/** The tasks this API accepts by name. */
import { z } from 'zod'
import { defineTask } from '../../src/index.js'

export const sendEmail = defineTask({
  name: 'send-email',
  input: z.object({ to: z.email(), subject: z.string().min(1), body: z.string().optional() }),
  defaults: { priority: 'normal', maxRetries: 3 },
})

export const resizeImage = defineTask({
  name: 'resize-image',
  input: z.object({ url: z.url(), width: z.number().int().min(1).max(10_000) }),
})
