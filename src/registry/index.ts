export { parseReference, formatReference, parseRepository, isLoopbackHost, type ImageReference } from './reference.js';
export { RegistryClient, type RegistryOptions } from './client.js';
export { pushImage, pushOpenedImage, type PushOptions, type PushResult } from './push.js';
export { pullImage, fetchImageManifest, type PullOptions, type PullResult } from './pull.js';
export { cacheLookup, cachePublish, cacheTag, cacheReference, type CacheLookupOptions } from './cache.js';
export { openImageTar, type ImageTar } from '../oci/image-tar.js';
export { cachedBuild, type CachedBuildOptions, type CachedBuildResult } from './build-cache.js';
