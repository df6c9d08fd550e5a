// Portkey only creates a Redis client on Node with REDIS_CONNECTION_STRING set.
export default class Redis {
  constructor() {
    throw new Error("ioredis is not available in workerd");
  }
}
