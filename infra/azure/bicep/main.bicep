// sekiban-rs on Azure: a Cosmos DB (NoSQL) account with the database and the two containers the
// store expects, a storage account with the blob container its large snapshots go to, and the
// data-plane roles for the application's identity.
//
// The containers follow `sekiban init --print-definition` (backend-cosmos/src/container.rs,
// `DEFINITION`): the events container is partitioned by the hierarchical key ['/t', '/s']
// (MultiHash, version 2) and indexes five paths only; the checkpoints container,
// '<events container>-checkpoints', is partitioned by '/id'. `sekiban init` is not needed after
// this template (and with Entra ID data-plane roles the application could not create containers
// anyway: that is a control-plane operation).

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

@description('Name of the Cosmos DB account (globally unique: 3-44 lowercase letters, digits and hyphens).')
@minLength(3)
@maxLength(44)
param accountName string

@description('Region of both accounts.')
param location string = resourceGroup().location

@description('Cosmos DB database.')
param databaseName string = 'sekiban'

@description('Events container; the checkpoints container is named after it: <containerName>-checkpoints.')
param containerName string = 'events'

@description('serverless: billed per request unit and GB stored, nothing for idle time. provisioned: autoscale throughput on the database, billed hourly.')
@allowed([
  'serverless'
  'provisioned'
])
param capacityMode string = 'serverless'

@description('Cosmos DB free tier (1000 RU/s and 25 GB free; one account per subscription). Only with provisioned capacity; ignored for serverless.')
param enableFreeTier bool = false

@description('Provisioned only: the autoscale maximum of the database\'s shared throughput (RU/s, a multiple of 1000); it scales between 10% of this and this.')
@minValue(1000)
@maxValue(1000000)
param autoscaleMaxThroughput int = 1000

@description('Storage account for snapshot blobs (globally unique: 3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param storageAccountName string

@description('Blob container for snapshots too large to store inline.')
param blobContainerName string = 'snapshots'

@description('Object (principal) id of the application\'s identity to grant the data-plane roles to; empty: no role assignments.')
param principalId string = ''

@description('What principalId is (the Azure RBAC role assignment records it; Cosmos DB\'s does not need it).')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param principalType string = 'ServicePrincipal'

@description('Turn account keys off: Entra ID only (sekiban URLs: credential=managed, workload or cli).')
param disableLocalAuth bool = true

@description('Allow shared-key (and account SAS) access to the storage account. Off: Entra ID only, as blob_key_env= needs a key.')
param allowSharedKeyAccess bool = false

@description('Public network access to both accounts. Disabled needs private endpoints, which this template does not create.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('Tags for every resource.')
param tags object = {}

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

var serverless = capacityMode == 'serverless'

// Built-in "Cosmos DB Built-in Data Contributor" (a Cosmos DB data-plane role definition).
var cosmosDataContributor = '00000000-0000-0000-0000-000000000002'

// Built-in "Storage Blob Data Contributor" (an Azure RBAC role definition).
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

var grant = !empty(principalId)

// ---------------------------------------------------------------------------------------------
// Cosmos DB
// ---------------------------------------------------------------------------------------------

// Backup: continuous, 7-day tier: point-in-time restore (into a new account) of the last 7 days,
// free of charge (restores are billed). So a hard-deleted stream stays restorable from the backup
// for up to 7 days after it is gone from the account. Where that is not acceptable, set
// backupPolicy to { type: 'Periodic', periodicModeProperties: { backupIntervalInMinutes: 240,
// backupRetentionIntervalInHours: 8, backupStorageRedundancy: 'Local' } } before the first
// deployment: an account can move from Periodic to Continuous, never back.
resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  name: accountName
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    consistencyPolicy: {
      // Session: a client reads its own writes; the store's appends are guarded by etags, not
      // by the consistency level.
      defaultConsistencyLevel: 'Session'
    }
    // One region (a serverless account runs in one region anyway).
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    // Never multi-region writes: two regions could each accept an append at one expected version
    // and conflict resolution would keep one of them afterwards, so sekiban's optimistic
    // concurrency would not hold. `CosmosStore::open` refuses such an account.
    enableMultipleWriteLocations: false
    enableAutomaticFailover: true
    capabilities: serverless ? [
      {
        name: 'EnableServerless'
      }
    ] : []
    enableFreeTier: !serverless && enableFreeTier
    enableAnalyticalStorage: false
    minimalTlsVersion: 'Tls12'
    disableLocalAuth: disableLocalAuth
    // Databases, containers and throughput change through Azure Resource Manager only (this
    // template), never with an account key.
    disableKeyBasedMetadataWriteAccess: true
    publicNetworkAccess: publicNetworkAccess
    isVirtualNetworkFilterEnabled: false
    // Continuous, 7-day tier (see above the resource): point-in-time restore, free of charge.
    backupPolicy: {
      type: 'Continuous'
      continuousModeProperties: {
        tier: 'Continuous7Days'
      }
    }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: databaseName
  tags: tags
  properties: {
    resource: {
      id: databaseName
    }
    // Provisioned: autoscale throughput shared by both containers (the minimum autoscale maximum
    // for a database, 1000 RU/s, fits the free tier). Serverless accounts take no throughput.
    options: serverless ? {} : {
      autoscaleSettings: {
        maxThroughput: autoscaleMaxThroughput
      }
    }
  }
}

resource events 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: containerName
  tags: tags
  properties: {
    resource: {
      id: containerName
      // The tenant, then the stream: one stream is one logical partition, and a tenant may grow
      // past one logical partition's 20 GB.
      partitionKey: {
        paths: [
          '/t'
          '/s'
        ]
        kind: 'MultiHash'
        version: 2
      }
      // Only the document kind, its order keys and its first and last versions are indexed;
      // event data is not, so a write is charged for its bytes rather than for index entries.
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/k/?'
          }
          {
            path: '/o/?'
          }
          {
            path: '/r/?'
          }
          {
            path: '/f/?'
          }
          {
            path: '/l/?'
          }
        ]
        excludedPaths: [
          {
            path: '/*'
          }
        ]
      }
      // No defaultTtl: nothing in an event store expires.
    }
  }
}

resource checkpoints 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: '${containerName}-checkpoints'
  tags: tags
  properties: {
    resource: {
      id: '${containerName}-checkpoints'
      partitionKey: {
        paths: [
          '/id'
        ]
        kind: 'Hash'
        version: 2
      }
    }
  }
}

// Data plane: read and write items, run queries, read the change feed and the account's
// metadata. Scoped to the account: the store reads the account's properties (its write regions)
// when it opens, which a database-scoped assignment does not cover.
resource cosmosRole 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = if (grant) {
  parent: account
  name: guid(account.id, principalId, cosmosDataContributor)
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${cosmosDataContributor}'
    principalId: principalId
    scope: account.id
  }
  // The account takes one control-plane change at a time.
  dependsOn: [
    events
    checkpoints
  ]
}

// ---------------------------------------------------------------------------------------------
// Blob storage for large snapshots
// ---------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    // Snapshots are derived data (rebuilt from the events), so locally redundant storage is
    // enough.
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: allowSharedKeyAccess
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    isHnsEnabled: false
    isLocalUserEnabled: false
    isSftpEnabled: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      defaultAction: publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'
      bypass: 'AzureServices'
    }
    // Should shared keys be allowed, SAS tokens signed with them expire within a day.
    sasPolicy: {
      sasExpirationPeriod: '1.00:00:00'
      expirationAction: 'Log'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    // No versioning and no blob soft delete: when a stream is hard-deleted, sekiban deletes its
    // snapshot blobs, and they must then be gone, not kept as versions or soft-deleted copies
    // for a retention period. Snapshots are derived data: a lost one is rebuilt from the events.
    isVersioningEnabled: false
    deleteRetentionPolicy: {
      enabled: false
    }
    changeFeed: {
      enabled: false
    }
    // Deleting the whole container by mistake stays recoverable for 7 days (blobs deleted one by
    // one before that are not kept).
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource snapshots 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: blobContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Read, write, list and delete blobs in the snapshot container only.
resource blobRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grant) {
  name: guid(snapshots.id, principalId, storageBlobDataContributor)
  scope: snapshots
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: principalId
    principalType: principalType
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

// https://ACCOUNT.documents.azure.com:443/ -> ACCOUNT.documents.azure.com
var cosmosHost = split(split(account.properties.documentEndpoint, '/')[2], ':')[0]

@description('The Cosmos DB account endpoint.')
output cosmosEndpoint string = account.properties.documentEndpoint

@description('The database.')
output databaseName string = database.name

@description('The events container.')
output containerName string = events.name

@description('The checkpoints container.')
output checkpointsContainerName string = checkpoints.name

@description('The storage account of the snapshot blobs.')
output storageAccountName string = storage.name

@description('The blob container of the snapshot blobs.')
output blobContainerName string = snapshots.name

@description('The store URL sekiban takes (--store), for an application running as the managed identity granted above.')
output storeUrl string = 'cosmos://${cosmosHost}/${uriComponent(databaseName)}/${uriComponent(containerName)}?credential=managed&blob_account=${uriComponent(storage.name)}&blob_container=${uriComponent(blobContainerName)}'
