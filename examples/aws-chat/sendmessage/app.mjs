// sendmessage: post the message's "data" to every connection in the table, deleting the ones
// API Gateway (here: Herald) says are gone. The management endpoint is built from the event,
// as many handlers written for API Gateway do.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand, DeleteCommand } from '@aws-sdk/lib-dynamodb';
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';

const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const { TABLE_NAME } = process.env;

export const handler = async (event) => {
  let connections;
  try {
    connections = await ddb.send(new ScanCommand({ TableName: TABLE_NAME, ProjectionExpression: 'connectionId' }));
  } catch (err) {
    return { statusCode: 500, body: err.stack };
  }

  const apigw = new ApiGatewayManagementApiClient({
    endpoint: `https://${event.requestContext.domainName}/${event.requestContext.stage}`,
  });
  const postData = JSON.parse(event.body).data;

  const posts = connections.Items.map(async ({ connectionId }) => {
    try {
      await apigw.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: postData }));
    } catch (err) {
      if (err.name === 'GoneException') {
        console.log(`Found stale connection, deleting ${connectionId}`);
        await ddb.send(new DeleteCommand({ TableName: TABLE_NAME, Key: { connectionId } }));
      } else {
        throw err;
      }
    }
  });

  try {
    await Promise.all(posts);
  } catch (err) {
    return { statusCode: 500, body: err.stack };
  }
  return { statusCode: 200, body: 'Data sent.' };
};
